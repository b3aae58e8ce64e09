use super::*;

fn cpu_sample(text: &str) -> f64 {
    let name = names::PROCESS_CPU_SECONDS;
    let mut samples = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name} ")))
        .map(|l| l[name.len() + 1..].parse::<f64>().unwrap());
    let v = samples
        .next()
        .unwrap_or_else(|| panic!("no {name} sample in:\n{text}"));
    assert!(samples.next().is_none(), "one sample only:\n{text}");
    v
}

/// Process CPU time is a counter with the `_total` suffix (a gauge cannot be `rate()`d
/// and fails promtool's naming lint), read at each scrape so it only grows.
#[test]
fn cpu_time_is_rendered_as_a_monotonic_counter() {
    let recorder = build_recorder();
    let handle = recorder.handle();
    let first = render(&handle);
    assert!(
        first.contains("# TYPE orrery_process_cpu_seconds_total counter\n"),
        "{first}"
    );
    assert!(first.contains("# HELP orrery_process_cpu_seconds_total "));
    assert!(!first.contains("orrery_process_cpu_seconds "), "{first}");
    let before = cpu_sample(&first);
    // Burn a little CPU so the second reading has something to add.
    let mut x = 0u64;
    let until = ProcessStats::read().unwrap().cpu_seconds + 0.02;
    while ProcessStats::read().unwrap().cpu_seconds < until {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
    let after = cpu_sample(&render(&handle));
    assert!(after > before, "{after} > {before}");
}

/// The counter is appended as its own family after whatever the recorder rendered, with
/// a line break between them even when the recorder's text has none at its end.
#[test]
fn cpu_counter_is_its_own_family_after_the_rest() {
    let mut text = String::from("# TYPE a_total counter\na_total 1");
    append_cpu_counter(&mut text, 1.5);
    assert_eq!(
        text,
        "# TYPE a_total counter\na_total 1\n\
         # HELP orrery_process_cpu_seconds_total Cumulative CPU time (user + system) used by the engine process.\n\
         # TYPE orrery_process_cpu_seconds_total counter\n\
         orrery_process_cpu_seconds_total 1.5\n"
    );
}
