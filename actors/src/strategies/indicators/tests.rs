//! Known-answer tests against TA-Lib, and streaming-equals-batch properties.
//!
//! The expected values were computed OFFLINE by TA-Lib itself (PyPI `TA-Lib` 0.8.2, whose
//! wheel bundles the C library; numpy 2.4.6) on the 60-bar series below. Python is never
//! called from the tests. The generator, for reproduction:
//!
//! ```text
//! rng = np.random.default_rng(14); close = [100.0]
//! for i in range(1, 60): close.append(round(close[-1] + rng.normal(0, 1.5), 2))
//! high = [round(c + abs(rng.normal(0, 0.8)), 2) for c in close]
//! low  = [round(c - abs(rng.normal(0, 0.8)), 2) for c in close]
//! talib.SMA(c,10) EMA(c,10) RSI(c,14) BBANDS(c,20,2,2,0) MACD(c,12,26,9)
//! MAX(h,20) MIN(l,20) ATR(h,l,c,14)      # NaN lookback -> None, repr() of each float
//! ```
//!
//! Prices are rounded to cents so the literals are exact.

use proptest::prelude::*;

use super::*;

/// 1e-9 relative, as the brief asks; the absolute floor only matters for a value that is
/// exactly zero on one side.
fn close_to(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-3)
}

fn assert_series(name: &str, got: &[Option<f64>], want: &[Option<f64>]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match (g, w) {
            (None, None) => {}
            (Some(g), Some(w)) => assert!(close_to(*g, *w), "{name}[{i}]: got {g}, TA-Lib {w}"),
            _ => panic!("{name}[{i}]: got {g:?}, TA-Lib {w:?} (warm-up differs)"),
        }
    }
}

fn stream<T>(xs: &[f64], mut f: impl FnMut(f64) -> Option<T>) -> Vec<Option<T>> {
    xs.iter().map(|&x| f(x)).collect()
}

fn bands(v: &[Option<Band>]) -> [Vec<Option<f64>>; 3] {
    [
        v.iter().map(|b| b.map(|b| b.upper)).collect(),
        v.iter().map(|b| b.map(|b| b.middle)).collect(),
        v.iter().map(|b| b.map(|b| b.lower)).collect(),
    ]
}

const CLOSE: [f64; 60] = [
    100.0, 101.04, 99.57, 97.21, 92.82, 92.29, 94.16, 94.21, 94.98, 96.51, 95.19, 99.17, 97.85,
    98.41, 102.52, 102.35, 102.52, 101.75, 102.25, 99.06, 98.09, 100.63, 100.95, 100.59, 101.15,
    101.77, 102.0, 102.87, 100.38, 101.27, 100.26, 101.44, 101.41, 99.91, 99.8, 98.29, 99.81,
    99.77, 101.05, 99.38, 101.81, 101.36, 103.41, 104.69, 103.04, 103.52, 102.71, 103.32, 105.47,
    106.5, 108.1, 106.34, 106.65, 107.19, 108.82, 107.89, 108.74, 109.38, 107.09, 105.53,
];
const HIGH: [f64; 60] = [
    100.36, 101.98, 100.55, 97.93, 93.05, 92.48, 94.24, 94.53, 95.41, 96.88, 95.5, 100.23, 98.23,
    98.46, 102.69, 103.36, 102.72, 102.44, 102.92, 99.73, 98.55, 101.55, 101.92, 100.9, 102.75,
    102.05, 103.11, 103.92, 100.58, 102.36, 100.33, 101.62, 102.89, 100.39, 100.92, 98.71, 100.23,
    99.81, 101.06, 99.53, 102.57, 101.75, 103.67, 104.81, 103.48, 104.62, 102.81, 104.48, 105.95,
    106.69, 109.29, 107.0, 107.48, 108.02, 109.49, 108.32, 109.34, 110.14, 107.24, 106.27,
];
const LOW: [f64; 60] = [
    99.68, 100.46, 98.71, 97.14, 91.38, 91.97, 93.99, 94.15, 94.18, 96.28, 94.84, 98.97, 96.85,
    98.08, 101.5, 102.25, 102.02, 101.32, 102.15, 97.56, 98.07, 100.55, 100.45, 100.34, 100.53,
    100.97, 101.47, 101.55, 99.9, 100.39, 99.58, 99.96, 100.94, 99.57, 99.18, 98.13, 99.71, 98.65,
    99.9, 99.04, 101.7, 99.89, 102.47, 103.29, 102.54, 103.21, 102.49, 103.1, 104.93, 105.83,
    107.17, 105.25, 106.36, 105.25, 107.5, 107.81, 107.71, 109.27, 106.74, 104.79,
];
const SMA_10: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(96.279),
    Some(95.798),
    Some(95.611),
    Some(95.439),
    Some(95.559),
    Some(96.529),
    Some(97.535),
    Some(98.37100000000001),
    Some(99.125),
    Some(99.852),
    Some(100.107),
    Some(100.39699999999999),
    Some(100.54299999999999),
    Some(100.853),
    Some(101.071),
    Some(100.934),
    Some(100.876),
    Some(100.824),
    Some(100.936),
    Some(100.749),
    Some(100.97),
    Some(101.187),
    Some(101.268),
    Some(101.314),
    Some(101.246),
    Some(101.11099999999999),
    Some(100.76299999999999),
    Some(100.54399999999998),
    Some(100.23399999999998),
    Some(100.30099999999997),
    Some(100.11199999999998),
    Some(100.26699999999998),
    Some(100.25899999999999),
    Some(100.45899999999997),
    Some(100.93699999999998),
    Some(101.261),
    Some(101.78399999999999),
    Some(102.074),
    Some(102.429),
    Some(102.87100000000001),
    Some(103.583),
    Some(104.21199999999999),
    Some(104.71),
    Some(105.03399999999999),
    Some(105.28399999999999),
    Some(105.862),
    Some(106.299),
    Some(106.902),
    Some(107.508),
    Some(107.66999999999999),
    Some(107.57299999999998),
];
const EMA_10: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(96.279),
    Some(96.081),
    Some(96.64263636363637),
    Some(96.86215702479339),
    Some(97.1435830202855),
    Some(98.1211133802336),
    Some(98.89000185655476),
    Some(99.55000151899935),
    Some(99.95000124281765),
    Some(100.36818283503263),
    Some(100.13033141048125),
    Some(99.75936206312102),
    Some(99.91765986982628),
    Some(100.10535807531241),
    Some(100.19347478889198),
    Some(100.36738846363889),
    Some(100.62240874297727),
    Some(100.87287988061777),
    Some(101.23599262959637),
    Some(101.08035760603339),
    Some(101.11483804130005),
    Some(100.95941294288185),
    Some(101.04679240781243),
    Some(101.11283015184654),
    Some(100.89413376060172),
    Some(100.69520034958322),
    Some(100.25789119511354),
    Some(100.17645643236563),
    Some(100.1025552628446),
    Some(100.2748179423274),
    Some(100.11212377099514),
    Some(100.42082853990512),
    Some(100.5915869871951),
    Some(101.10402571679599),
    Some(101.7560210410149),
    Some(101.98947176083038),
    Some(102.26774962249759),
    Some(102.34815878204348),
    Some(102.5248571853083),
    Some(103.06033769707044),
    Some(103.68573084305763),
    Some(104.48832523522897),
    Some(104.82499337427825),
    Some(105.15681276077312),
    Some(105.52648316790528),
    Some(106.12530441010432),
    Some(106.44615815372171),
    Some(106.8632203075905),
    Some(107.32081661530131),
    Some(107.2788499579738),
    Some(106.9608772383422),
];
const RSI_14: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(54.98023715415018),
    Some(54.58524510987682),
    Some(54.93391644162619),
    Some(52.950931758090746),
    Some(54.10935411322143),
    Some(46.280174559344786),
    Some(44.186545729812735),
    Some(50.50115435241636),
    Some(51.24947508545138),
    Some(50.327674924023455),
    Some(51.78058749891785),
    Some(53.40556513387907),
    Some(54.02453911665071),
    Some(56.38476032998111),
    Some(48.681794452231124),
    Some(51.24560174634675),
    Some(48.2967824088903),
    Some(51.78736376467909),
    Some(51.6918148178785),
    Some(47.02045211506269),
    Some(46.68725117112344),
    Some(42.260150413027944),
    Some(47.64226878431677),
    Some(47.51674518950231),
    Some(51.88536997778102),
    Some(46.45255655090833),
    Some(54.00018396977251),
    Some(52.523735672644676),
    Some(58.13886808428109),
    Some(61.22277316117219),
    Some(55.542441916780604),
    Some(56.7981957870188),
    Some(54.02499010315114),
    Some(55.776180199462225),
    Some(61.36236506773105),
    Some(63.72629406725445),
    Some(67.09422698440406),
    Some(60.44585379355809),
    Some(61.17559480822844),
    Some(62.4743338655706),
    Some(66.15472262901014),
    Some(62.39467913214697),
    Some(64.38700848237634),
    Some(65.8539021907507),
    Some(56.83334079155862),
    Some(51.64363590161173),
];
const BB_20_2_UPPER: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(104.79542107109202),
    Some(104.64765686835055),
    Some(104.59266757899756),
    Some(104.75204995439786),
    Some(104.98920856731343),
    Some(105.01000388229554),
    Some(104.86843378029445),
    Some(104.88187271584812),
    Some(104.87936161897821),
    Some(104.55993411734471),
    Some(104.44114154131533),
    Some(103.8363035328298),
    Some(103.86760381317063),
    Some(103.69712028611657),
    Some(103.53640054459812),
    Some(103.3844472898437),
    Some(103.37973807486728),
    Some(103.15520537390158),
    Some(103.03601203587417),
    Some(102.86633722475),
    Some(102.8461672390523),
    Some(102.7996803902194),
    Some(102.8536987943734),
    Some(103.27443865080325),
    Some(103.99148120683569),
    Some(104.20805493001038),
    Some(104.45524339003008),
    Some(104.53786915188586),
    Some(104.60946445984396),
    Some(105.29144680166915),
    Some(106.1214109723999),
    Some(107.23613676886765),
    Some(107.77234067460435),
    Some(108.30761958152314),
    Some(108.83202593282596),
    Some(109.58230152471413),
    Some(109.83096379209681),
    Some(110.28062496628255),
    Some(110.7100512712158),
    Some(110.78682296008854),
    Some(110.38689425959856),
];
const BB_20_2_MIDDLE: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(98.193),
    Some(98.0975),
    Some(98.077),
    Some(98.146),
    Some(98.315),
    Some(98.73150000000001),
    Some(99.2055),
    Some(99.5975),
    Some(100.0305),
    Some(100.30050000000001),
    Some(100.53850000000001),
    Some(100.792),
    Some(100.9055),
    Some(101.08350000000002),
    Some(101.15850000000002),
    Some(101.02250000000001),
    Some(100.81950000000002),
    Some(100.68400000000001),
    Some(100.58500000000001),
    Some(100.525),
    Some(100.54100000000001),
    Some(100.727),
    Some(100.76350000000001),
    Some(100.88650000000001),
    Some(101.09150000000002),
    Some(101.186),
    Some(101.27350000000001),
    Some(101.30900000000001),
    Some(101.33150000000002),
    Some(101.58600000000003),
    Some(101.84750000000003),
    Some(102.23950000000002),
    Some(102.48450000000003),
    Some(102.74650000000001),
    Some(103.1105),
    Some(103.5615),
    Some(104.0415),
    Some(104.48799999999999),
    Some(104.96849999999999),
    Some(105.2705),
    Some(105.578),
];
const BB_20_2_LOWER: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(91.59057892890797),
    Some(91.54734313164944),
    Some(91.56133242100243),
    Some(91.53995004560214),
    Some(91.64079143268657),
    Some(92.45299611770449),
    Some(93.54256621970555),
    Some(94.31312728415188),
    Some(95.1816383810218),
    Some(96.04106588265532),
    Some(96.6358584586847),
    Some(97.7476964671702),
    Some(97.94339618682937),
    Some(98.46987971388346),
    Some(98.78059945540191),
    Some(98.66055271015631),
    Some(98.25926192513276),
    Some(98.21279462609844),
    Some(98.13398796412585),
    Some(98.18366277525001),
    Some(98.23583276094772),
    Some(98.65431960978061),
    Some(98.67330120562661),
    Some(98.49856134919678),
    Some(98.19151879316436),
    Some(98.16394506998964),
    Some(98.09175660996995),
    Some(98.08013084811417),
    Some(98.05353554015608),
    Some(97.8805531983309),
    Some(97.57358902760015),
    Some(97.24286323113239),
    Some(97.1966593253957),
    Some(97.18538041847688),
    Some(97.38897406717405),
    Some(97.54069847528586),
    Some(98.25203620790319),
    Some(98.69537503371743),
    Some(99.22694872878418),
    Some(99.75417703991145),
    Some(100.76910574040144),
];
const MACD_12_26_9_MACD: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(1.213557269993757),
    Some(1.0252127378690403),
    Some(0.745510181499327),
    Some(0.6391277207367381),
    Some(0.5453052489627765),
    Some(0.5676915716588127),
    Some(0.4455419205328184),
    Some(0.538609379957947),
    Some(0.5694900461177212),
    Some(0.7507271487087905),
    Some(0.9862749966224982),
    Some(1.0279574985876678),
    Some(1.0871907123941469),
    Some(1.0565934786255013),
    Some(1.0692413042640112),
    Some(1.238475454786908),
    Some(1.4391178752275096),
    Some(1.7075514767097104),
    Some(1.758004566455483),
    Some(1.8022284451286197),
    Some(1.859415490298403),
    Some(2.0130587252286034),
    Some(2.036305604729705),
    Some(2.099119477789202),
    Some(2.1754651677613026),
    Some(2.0278104785056854),
    Some(1.764573209390818),
];
const MACD_12_26_9_SIGNAL: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(1.8407119316194098),
    Some(1.6776120928693359),
    Some(1.491191710595334),
    Some(1.320778912623615),
    Some(1.1656841798914472),
    Some(1.0460856582449203),
    Some(0.9259769107024999),
    Some(0.8485034045535893),
    Some(0.7927007328664157),
    Some(0.7843060160348907),
    Some(0.8246998121524122),
    Some(0.8653513494394633),
    Some(0.9097192220304),
    Some(0.9390940733494203),
    Some(0.9651235195323384),
    Some(1.0197939065832524),
    Some(1.103658700312104),
    Some(1.2244372555916252),
    Some(1.3311507177643969),
    Some(1.4253662632372415),
    Some(1.5121761086494738),
    Some(1.6123526319652997),
    Some(1.6971432265181807),
    Some(1.777538476772385),
    Some(1.8571238149701685),
    Some(1.8912611476772718),
    Some(1.865923560019981),
];
const MACD_12_26_9_HIST: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(-0.6271546616256529),
    Some(-0.6523993550002956),
    Some(-0.745681529096007),
    Some(-0.6816511918868768),
    Some(-0.6203789309286707),
    Some(-0.4783940865861076),
    Some(-0.4804349901696815),
    Some(-0.3098940245956423),
    Some(-0.2232106867486945),
    Some(-0.03357886732610016),
    Some(0.161575184470086),
    Some(0.16260614914820448),
    Some(0.17747149036374688),
    Some(0.11749940527608105),
    Some(0.10411778473167277),
    Some(0.21868154820365548),
    Some(0.33545917491540567),
    Some(0.4831142211180852),
    Some(0.4268538486910862),
    Some(0.3768621818913782),
    Some(0.3472393816489292),
    Some(0.40070609326330375),
    Some(0.3391623782115243),
    Some(0.32158100101681697),
    Some(0.31834135279113407),
    Some(0.13654933082841358),
    Some(-0.10135035062916309),
];
const DONCHIAN_20_UPPER: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(103.36),
    Some(103.36),
    Some(103.36),
    Some(103.36),
    Some(103.36),
    Some(103.36),
    Some(103.36),
    Some(103.36),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(103.92),
    Some(104.81),
    Some(104.81),
    Some(104.81),
    Some(104.81),
    Some(104.81),
    Some(105.95),
    Some(106.69),
    Some(109.29),
    Some(109.29),
    Some(109.29),
    Some(109.29),
    Some(109.49),
    Some(109.49),
    Some(109.49),
    Some(110.14),
    Some(110.14),
    Some(110.14),
];
const DONCHIAN_20_LOWER: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(91.38),
    Some(91.38),
    Some(91.38),
    Some(91.38),
    Some(91.38),
    Some(91.97),
    Some(93.99),
    Some(94.15),
    Some(94.18),
    Some(94.84),
    Some(94.84),
    Some(96.85),
    Some(96.85),
    Some(97.56),
    Some(97.56),
    Some(97.56),
    Some(97.56),
    Some(97.56),
    Some(97.56),
    Some(97.56),
    Some(98.07),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.13),
    Some(98.65),
    Some(98.65),
    Some(99.04),
    Some(99.04),
    Some(99.89),
];
const ATR_14: [Option<f64>; 60] = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some(2.3428571428571416),
    Some(2.254795918367346),
    Some(2.143739067055393),
    Some(2.0763291336942937),
    Some(2.011591338430416),
    Some(2.202906242828243),
    Some(2.1162700826262264),
    Some(2.212250791010067),
    Some(2.1592328773664904),
    Some(2.048573386126027),
    Some(2.060818144259882),
    Some(1.9907597053841761),
    Some(1.9657054407138779),
    Some(1.9945836235200298),
    Some(2.0642562218400275),
    Some(2.058237920280026),
    Some(2.0319352116885954),
    Some(2.0053684108536967),
    Some(2.001413524364147),
    Some(1.9898839869095655),
    Some(1.972035130701739),
    Some(1.950461192794472),
    Some(1.9497139647377237),
    Some(1.8933058243993146),
    Some(1.8502125512279355),
    Some(1.8616259404259394),
    Some(1.9565098018240865),
    Some(1.953901958836652),
    Some(1.9793375332054628),
    Some(1.9465277094050724),
    Some(1.9610614444475665),
    Some(1.9338427698441687),
    Some(1.8692825719981567),
    Some(1.8621909597125748),
    Some(1.9170344625902487),
    Some(1.8672462866909452),
    Some(1.933157266213021),
    Some(1.9986460329120905),
    Some(1.9373141734183699),
    Some(1.9967917324599145),
    Some(2.0184494658556345),
    Some(1.94641736115166),
    Some(1.9238161210693991),
    Some(1.8864006838501568),
    Some(1.9402292064322886),
    Some(1.9659271202585535),
];

#[test]
fn sma_matches_ta_lib() {
    let mut s = Sma::new(10).unwrap();
    assert_series("SMA stream", &stream(&CLOSE, |x| s.update(x)), &SMA_10);
    assert_series("SMA batch", &Sma::batch(10, &CLOSE).unwrap(), &SMA_10);
}

#[test]
fn ema_matches_ta_lib_sma_seeded() {
    let mut e = Ema::new(10).unwrap();
    assert_series("EMA stream", &stream(&CLOSE, |x| e.update(x)), &EMA_10);
    assert_series("EMA batch", &Ema::batch(10, &CLOSE).unwrap(), &EMA_10);
}

#[test]
fn rsi_matches_ta_lib_wilder() {
    let mut r = Rsi::new(14).unwrap();
    assert_series("RSI stream", &stream(&CLOSE, |x| r.update(x)), &RSI_14);
    assert_series("RSI batch", &Rsi::batch(14, &CLOSE).unwrap(), &RSI_14);
}

#[test]
fn bollinger_matches_ta_lib_bbands() {
    let mut b = Bollinger::new(20, 2.0).unwrap();
    let streamed = stream(&CLOSE, |x| b.update(x));
    let batch = Bollinger::batch(20, 2.0, &CLOSE).unwrap();
    let want = [&BB_20_2_UPPER, &BB_20_2_MIDDLE, &BB_20_2_LOWER];
    for (form, got) in [("stream", bands(&streamed)), ("batch", bands(&batch))] {
        for (line, (g, w)) in ["upper", "middle", "lower"]
            .iter()
            .zip(got.iter().zip(want))
        {
            assert_series(&format!("Bollinger {form} {line}"), g, w);
        }
    }
}

#[test]
fn macd_matches_ta_lib_including_its_fast_ema_seed() {
    let mut m = Macd::new(12, 26, 9).unwrap();
    let streamed = stream(&CLOSE, |x| m.update(x));
    let batch = Macd::batch(12, 26, 9, &CLOSE).unwrap();
    for (form, got) in [("stream", streamed), ("batch", batch)] {
        let macd: Vec<_> = got.iter().map(|v| v.map(|v| v.macd)).collect();
        let signal: Vec<_> = got.iter().map(|v| v.map(|v| v.signal)).collect();
        let hist: Vec<_> = got.iter().map(|v| v.map(|v| v.histogram)).collect();
        assert_series(&format!("MACD {form} macd"), &macd, &MACD_12_26_9_MACD);
        assert_series(
            &format!("MACD {form} signal"),
            &signal,
            &MACD_12_26_9_SIGNAL,
        );
        assert_series(&format!("MACD {form} histogram"), &hist, &MACD_12_26_9_HIST);
    }
    // The seed matters: EMA(12) over the same closes, seeded on the first 12, gives another
    // MACD line, so a naive EMA(12) − EMA(26) would not pass the assertions above.
    let naive_fast = Ema::batch(12, &CLOSE).unwrap()[33].unwrap();
    let slow = Ema::batch(26, &CLOSE).unwrap()[33].unwrap();
    let want = MACD_12_26_9_MACD[33].unwrap();
    assert!(
        !close_to(naive_fast - slow, want),
        "seed quirk not exercised"
    );
}

#[test]
fn donchian_matches_ta_lib_max_min() {
    let mut d = Donchian::new(20).unwrap();
    let streamed: Vec<_> = HIGH
        .iter()
        .zip(&LOW)
        .map(|(&h, &l)| d.update(h, l))
        .collect();
    let batch = Donchian::batch(20, &HIGH, &LOW).unwrap();
    for (form, got) in [("stream", bands(&streamed)), ("batch", bands(&batch))] {
        assert_series(
            &format!("Donchian {form} upper"),
            &got[0],
            &DONCHIAN_20_UPPER,
        );
        assert_series(
            &format!("Donchian {form} lower"),
            &got[2],
            &DONCHIAN_20_LOWER,
        );
        for (i, m) in got[1].iter().enumerate() {
            let want = DONCHIAN_20_UPPER[i]
                .zip(DONCHIAN_20_LOWER[i])
                .map(|(u, l)| (u + l) / 2.0);
            assert_eq!(*m, want, "Donchian {form} middle[{i}]");
        }
    }
}

#[test]
fn atr_matches_ta_lib_wilder() {
    let mut a = Atr::new(14).unwrap();
    let streamed: Vec<_> = (0..CLOSE.len())
        .map(|i| a.update(HIGH[i], LOW[i], CLOSE[i]))
        .collect();
    assert_series("ATR stream", &streamed, &ATR_14);
    assert_series(
        "ATR batch",
        &Atr::batch(14, &HIGH, &LOW, &CLOSE).unwrap(),
        &ATR_14,
    );
}

#[test]
fn flat_series_gives_ta_lib_rsi_zero_and_zero_width_bands() {
    let flat = [50.0; 30];
    let rsi = Rsi::batch(14, &flat).unwrap();
    assert_eq!(rsi[14], Some(0.0));
    let mut r = Rsi::new(14).unwrap();
    assert_eq!(stream(&flat, |x| r.update(x))[29], Some(0.0));
    let mut b = Bollinger::new(20, 2.0).unwrap();
    let last = stream(&flat, |x| b.update(x))[29].unwrap();
    assert_eq!((last.upper, last.middle, last.lower), (50.0, 50.0, 50.0));
}

#[test]
fn bad_parameters_are_refused_with_a_clear_error() {
    assert_eq!(
        Sma::new(0).unwrap_err(),
        IndicatorError::ZeroPeriod { indicator: "SMA" }
    );
    assert!(Ema::new(0).is_err() && Rsi::new(0).is_err() && Atr::new(0).is_err());
    assert!(Donchian::new(0).is_err() && Bollinger::new(0, 2.0).is_err());
    assert!(matches!(
        Bollinger::new(20, -1.0),
        Err(IndicatorError::BadMultiplier { .. })
    ));
    assert!(matches!(
        Bollinger::new(20, f64::NAN),
        Err(IndicatorError::BadMultiplier { .. })
    ));
    assert_eq!(
        Macd::new(26, 12, 9).unwrap_err(),
        IndicatorError::MacdPeriods { fast: 26, slow: 12 }
    );
    assert!(Macd::batch(12, 12, 9, &CLOSE).is_err());
    let err = Macd::new(26, 12, 9).unwrap_err().to_string();
    assert!(err.contains("fast period (26)"), "{err}");
}

#[test]
fn batch_refuses_non_finite_input_naming_the_index() {
    let mut xs = CLOSE.to_vec();
    xs[7] = f64::NAN;
    match Sma::batch(3, &xs) {
        Err(IndicatorError::NonFinite {
            indicator, index, ..
        }) => {
            assert_eq!((indicator, index), ("SMA", 7));
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    xs[7] = f64::INFINITY;
    assert!(Rsi::batch(14, &xs).is_err() && Ema::batch(3, &xs).is_err());
    assert!(Bollinger::batch(3, 2.0, &xs).is_err() && Macd::batch(12, 26, 9, &xs).is_err());
    assert!(Donchian::batch(3, &xs, &LOW).is_err() && Atr::batch(3, &HIGH, &LOW, &xs).is_err());
    assert_eq!(
        Atr::batch(3, &HIGH, &LOW[..59], &CLOSE).unwrap_err(),
        IndicatorError::LengthMismatch {
            indicator: "ATR",
            lengths: vec![60, 59, 60]
        }
    );
}

#[test]
fn streaming_skips_a_non_finite_input_without_touching_state() {
    // Same series with NaN/inf spliced in: every finite bar must read as without them.
    let mut clean_rsi = Rsi::new(14).unwrap();
    let mut dirty_rsi = Rsi::new(14).unwrap();
    let mut clean_macd = Macd::new(12, 26, 9).unwrap();
    let mut dirty_macd = Macd::new(12, 26, 9).unwrap();
    let mut clean_bb = Bollinger::new(20, 2.0).unwrap();
    let mut dirty_bb = Bollinger::new(20, 2.0).unwrap();
    let mut clean_atr = Atr::new(14).unwrap();
    let mut dirty_atr = Atr::new(14).unwrap();
    let mut dirty_dc = Donchian::new(20).unwrap();
    let mut clean_dc = Donchian::new(20).unwrap();
    for (i, &x) in CLOSE.iter().enumerate() {
        if i % 7 == 3 {
            assert_eq!(dirty_rsi.update(f64::NAN), None);
            assert_eq!(dirty_macd.update(f64::INFINITY), None);
            assert_eq!(dirty_bb.update(f64::NEG_INFINITY), None);
            assert_eq!(dirty_atr.update(HIGH[i], f64::NAN, x), None);
            assert_eq!(dirty_dc.update(f64::NAN, LOW[i]), None);
        }
        assert_eq!(dirty_rsi.update(x), clean_rsi.update(x), "RSI at {i}");
        assert_eq!(dirty_macd.update(x), clean_macd.update(x), "MACD at {i}");
        assert_eq!(dirty_bb.update(x), clean_bb.update(x), "Bollinger at {i}");
        let (h, l) = (HIGH[i], LOW[i]);
        assert_eq!(
            dirty_atr.update(h, l, x),
            clean_atr.update(h, l, x),
            "ATR at {i}"
        );
        assert_eq!(
            dirty_dc.update(h, l),
            clean_dc.update(h, l),
            "Donchian at {i}"
        );
    }
    assert!(
        clean_rsi.update(100.0).is_some(),
        "the series warmed RSI up"
    );
}

/// A price-like series: a walk of positive values, sometimes flat, so windows with zero
/// variance and long monotone runs (the Donchian deques' worst case) both occur.
fn series() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop_oneof![3 => -5.0..5.0f64, 1 => Just(0.0f64)], 0..300).prop_map(
        |steps| {
            let mut x = 1000.0;
            steps
                .into_iter()
                .map(|s| {
                    x = (x + s).max(1.0);
                    x
                })
                .collect()
        },
    )
}

fn agree(a: &[Option<f64>], b: &[Option<f64>]) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        match (x, y) {
            (None, None) => {}
            (Some(x), Some(y)) => prop_assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                "index {}: stream {} batch {}",
                i,
                x,
                y
            ),
            _ => prop_assert!(false, "index {}: stream {:?} batch {:?}", i, x, y),
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn streaming_equals_batch(xs in series(), n in 1usize..40, k in 0.0..4.0f64, signal in 1usize..15) {
        let mut sma = Sma::new(n).unwrap();
        agree(&stream(&xs, |x| sma.update(x)), &Sma::batch(n, &xs).unwrap())?;
        let mut ema = Ema::new(n).unwrap();
        agree(&stream(&xs, |x| ema.update(x)), &Ema::batch(n, &xs).unwrap())?;
        let mut rsi = Rsi::new(n).unwrap();
        agree(&stream(&xs, |x| rsi.update(x)), &Rsi::batch(n, &xs).unwrap())?;

        let mut bb = Bollinger::new(n, k).unwrap();
        let (s, b) = (bands(&stream(&xs, |x| bb.update(x))), bands(&Bollinger::batch(n, k, &xs).unwrap()));
        for line in 0..3 { agree(&s[line], &b[line])?; }

        let fast = (n / 2).max(1);
        let slow = fast + 1 + n / 2;
        let mut macd = Macd::new(fast, slow, signal).unwrap();
        let s = stream(&xs, |x| macd.update(x));
        let b = Macd::batch(fast, slow, signal, &xs).unwrap();
        for pick in [|v: MacdValue| v.macd, |v: MacdValue| v.signal, |v: MacdValue| v.histogram] {
            let s: Vec<_> = s.iter().map(|v| v.map(pick)).collect();
            let b: Vec<_> = b.iter().map(|v| v.map(pick)).collect();
            agree(&s, &b)?;
        }

        // Bars around the closes: high above, low below, by a varying spread.
        let highs: Vec<f64> = xs.iter().enumerate().map(|(i, x)| x + (i % 5) as f64 * 0.3).collect();
        let lows: Vec<f64> = xs.iter().enumerate().map(|(i, x)| x - (i % 3) as f64 * 0.4).collect();
        let mut dc = Donchian::new(n).unwrap();
        let s: Vec<_> = highs.iter().zip(&lows).map(|(&h, &l)| dc.update(h, l)).collect();
        let (s, b) = (bands(&s), bands(&Donchian::batch(n, &highs, &lows).unwrap()));
        for line in 0..3 { agree(&s[line], &b[line])?; }

        let mut atr = Atr::new(n).unwrap();
        let s: Vec<_> = (0..xs.len()).map(|i| atr.update(highs[i], lows[i], xs[i])).collect();
        agree(&s, &Atr::batch(n, &highs, &lows, &xs).unwrap())?;
    }
}

#[test]
fn long_run_streaming_does_not_drift_from_batch() {
    // 200 000 bars of a deterministic walk: the periodic re-summing keeps SMA and Bollinger
    // on the two-pass values at the end of a long live run.
    let xs: Vec<f64> = (0..200_000u32)
        .map(|i| 30_000.0 + 500.0 * (f64::from(i) * 0.001).sin() + f64::from(i % 17) * 0.37)
        .collect();
    let mut sma = Sma::new(50).unwrap();
    let mut bb = Bollinger::new(50, 2.0).unwrap();
    let (mut s, mut b) = (None, None);
    for &x in &xs {
        s = sma.update(x);
        b = bb.update(x);
    }
    let tail = &xs[xs.len() - 50..];
    let want_sma = Sma::batch(50, tail).unwrap()[49].unwrap();
    let want_bb = Bollinger::batch(50, 2.0, tail).unwrap()[49].unwrap();
    assert!(close_to(s.unwrap(), want_sma), "{s:?} vs {want_sma}");
    let b = b.unwrap();
    assert!(
        close_to(b.upper, want_bb.upper) && close_to(b.lower, want_bb.lower),
        "{b:?} vs {want_bb:?}"
    );
}
