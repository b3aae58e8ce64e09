use super::*;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}
impl Record for Note {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NoteV2 {
    body: String,
}
impl Record for NoteV2 {
    const VERSION: u16 = 2;
    fn upgrade(from: u16, v: serde_json::Value) -> Result<Self, String> {
        assert_eq!(from, 1);
        Ok(NoteV2 {
            body: v["text"].as_str().ok_or("no text")?.to_string(),
        })
    }
}

#[test]
fn values_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let store = Store::open(&path).unwrap();
        let t = store.tree::<Note>("notes").unwrap();
        t.put_durable_blocking(
            "a",
            &Note {
                text: "hello".into(),
            },
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let t = store.tree::<Note>("notes").unwrap();
    assert_eq!(
        t.get("a").unwrap(),
        Some(Note {
            text: "hello".into()
        })
    );
}

#[test]
fn data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh");
    let _store = Store::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

/// Waits until no sled handle in this process holds the data dir at `path`.
fn sled_released(path: &std::path::Path) {
    Store::wait_released(path, Duration::from_secs(60)).unwrap();
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let db = sled::open(&path).unwrap();
        let meta = db.open_tree(trees::META).unwrap();
        meta.insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    // A bare sled handle closes its file late too (see `LockRelease`).
    sled_released(&path);
    // Refused every time, never "locked": a refused dir is released before the error.
    for _ in 0..50 {
        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this binary supports"));
    }
    let db = sled::open(&path).unwrap();
    let raw = db
        .open_tree(trees::META)
        .unwrap()
        .get(SCHEMA_KEY)
        .unwrap()
        .unwrap();
    assert_eq!(raw.as_ref(), &(SCHEMA_VERSION + 1).to_be_bytes());
}

#[test]
fn old_records_are_upgraded_and_newer_refused() {
    let store = Store::temporary().unwrap();
    store
        .tree::<Note>("n")
        .unwrap()
        .put("k", &Note { text: "x".into() })
        .unwrap();
    let v2 = store.tree::<NoteV2>("n").unwrap();
    assert_eq!(v2.get("k").unwrap(), Some(NoteV2 { body: "x".into() }));
    v2.put("k2", &NoteV2 { body: "y".into() }).unwrap();
    let v1 = store.tree::<Note>("n").unwrap();
    assert!(matches!(
        v1.get("k2"),
        Err(StoreError::NewerRecord {
            found: 2,
            supported: 1,
            ..
        })
    ));
}

#[test]
fn garbage_is_a_decode_error_not_a_panic() {
    let store = Store::temporary().unwrap();
    let raw = store.inner.db.open_tree("n").unwrap();
    raw.insert("short", &[1u8][..]).unwrap();
    raw.insert("junk", &[0u8, 1, b'{'][..]).unwrap();
    let t = store.tree::<Note>("n").unwrap();
    assert!(matches!(t.get("short"), Err(StoreError::Decode { .. })));
    assert!(matches!(t.get("junk"), Err(StoreError::Decode { .. })));
    assert_eq!(t.iter().filter(|r| r.is_err()).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_group_commit() {
    let store = Store::temporary().unwrap();
    let t = store.tree::<Note>("n").unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.put_durable(
                &format!("{i:04}"),
                &Note {
                    text: i.to_string(),
                },
            )
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(t.len(), 200);
    assert_eq!(t.last_n(1).unwrap()[0].1.text, "199");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_batch_lands_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let store = Store::open(&path).unwrap();
        let t = store.tree::<Note>("n").unwrap();
        let items: Vec<(String, Note)> = (0..50)
            .map(|i| {
                (
                    format!("{i:03}"),
                    Note {
                        text: format!("v{i}"),
                    },
                )
            })
            .collect();
        t.put_durable_batch(&items).await.unwrap();
        t.put_durable_batch(&[]).await.unwrap();
    }
    let store = Store::open(&path).unwrap();
    let t = store.tree::<Note>("n").unwrap();
    assert_eq!(t.len(), 50);
    assert_eq!(t.get("049").unwrap(), Some(Note { text: "v49".into() }));
}

/// The data dir must be reopenable the moment the last handle is dropped: an embedding
/// application restarting the engine, the CLI's "is an engine running?" probe followed by
/// an in-process engine, and tests all reopen at once. Durable writes go through the writer
/// thread and sled's I/O threads, which used to hold the file lock for a moment after the
/// drop returned (`could not acquire lock ... WouldBlock`), most often when the machine is
/// busy; four loops at once on separate dirs make this test's own load.
#[test]
fn data_dir_reopens_right_after_the_last_handle_drops() {
    let dir = tempfile::tempdir().unwrap();
    let loops: Vec<_> = (0..4)
        .map(|n| {
            let path = dir.path().join(format!("data-{n}"));
            std::thread::spawn(move || {
                for i in 0..200 {
                    let store =
                        Store::open(&path).unwrap_or_else(|e| panic!("loop {n}, reopen #{i}: {e}"));
                    let notes = store.tree::<Note>("notes").unwrap();
                    notes
                        .put_durable_blocking(
                            &format!("k{i:03}"),
                            &Note {
                                text: i.to_string(),
                            },
                        )
                        .unwrap();
                    let held_elsewhere = notes.clone();
                    drop(store);
                    drop(notes);
                    drop(held_elsewhere);
                }
                let store = Store::open(&path).unwrap();
                let notes = store.tree::<Note>("notes").unwrap();
                assert_eq!(notes.len(), 200);
                assert_eq!(
                    notes.get("k199").unwrap(),
                    Some(Note { text: "199".into() })
                );
            })
        })
        .collect();
    for l in loops {
        l.join().unwrap();
    }
}

/// `close` waits for trees handed out to other tasks, then releases the dir before it
/// returns, so the next open in the same process succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_every_handle_then_releases_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    for i in 0..200 {
        let store = Store::open(&path).unwrap_or_else(|e| panic!("reopen #{i}: {e}"));
        let notes = store.tree::<Note>("notes").unwrap();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        // A task that still holds a tree when `close` starts, as an actor stopping
        // on another thread does.
        let holder = tokio::spawn(async move {
            let _ = wait.await;
            notes
                .put_durable(
                    &format!("k{i:03}"),
                    &Note {
                        text: i.to_string(),
                    },
                )
                .await
        });
        let closing = tokio::spawn(store.close(Duration::from_secs(60)));
        go.send(()).unwrap();
        holder.await.unwrap().unwrap();
        closing.await.unwrap().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.tree::<Note>("notes").unwrap().len(), 200);
}

/// A handle that is never dropped makes `close` fail with how many are left, and the dir
/// stays locked until that handle goes; dropping it then releases the dir at once.
#[tokio::test(start_paused = true)]
async fn close_reports_handles_still_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let store = Store::open(&path).unwrap();
    let notes = store.tree::<Note>("notes").unwrap();
    let other = store.clone();
    match store.close(Duration::from_secs(5)).await {
        Err(StoreError::InUse { handles, .. }) => assert_eq!(handles, 2),
        other => panic!("expected InUse, got {other:?}"),
    }
    assert!(matches!(Store::open(&path), Err(StoreError::Busy { .. })));
    drop(other);
    drop(notes);
    Store::open(&path).unwrap();
}

#[test]
fn a_watch_sees_later_writes_of_its_prefix_decoded_and_ends_with_the_store() {
    let store = Store::temporary().unwrap();
    let t = store.tree::<Note>("notes").unwrap();
    t.put(
        "mode",
        &Note {
            text: "before".into(),
        },
    )
    .unwrap();
    let mut watch = t.watch("mode");
    t.put(
        "other",
        &Note {
            text: "not watched".into(),
        },
    )
    .unwrap();
    t.put(
        "mode",
        &Note {
            text: "halted".into(),
        },
    )
    .unwrap();
    t.remove("mode").unwrap();
    t.put(
        "mode",
        &Note {
            text: "normal".into(),
        },
    )
    .unwrap();
    let next = |w: &mut Watch<Note>| futures::executor::block_on(w.next());
    let (key, value) = next(&mut watch).unwrap();
    assert_eq!(
        (key.as_str(), value.unwrap().text.as_str()),
        ("mode", "halted")
    );
    // The removal is skipped.
    let (_, value) = next(&mut watch).unwrap();
    assert_eq!(value.unwrap().text, "normal");
    drop(t);
    drop(store);
    assert!(
        next(&mut watch).is_none(),
        "the watch ends once the store is closed"
    );
}

#[test]
fn iter_rev_before_pages_newest_first_from_a_cursor() {
    let store = Store::temporary().unwrap();
    let t = store.tree::<Note>("notes").unwrap();
    for k in ["a", "b", "c", "d"] {
        t.put(k, &Note { text: k.into() }).unwrap();
    }
    let keys = |from: Option<&str>| -> Vec<String> {
        t.iter_rev_before(from)
            .take(2)
            .map(|r| r.unwrap().0)
            .collect()
    };
    assert_eq!(keys(None), ["d", "c"]);
    assert_eq!(keys(Some("c")), ["b", "a"]);
    assert_eq!(keys(Some("a")), Vec::<String>::new());
    // A cursor that is not a key pages from where it would sort.
    assert_eq!(keys(Some("bb")), ["b", "a"]);
}
