//! Checks of the Yocto layer (yocto/meta-twincast) that need no BitBake, so they run in plain
//! `cargo test`: the crates include lists exactly the crates of the Cargo.lock at the recipe's
//! SRCREV, and every GStreamer element the daemon can create maps to an OpenEmbedded package
//! that the recipe's RDEPENDS, its RRECOMMENDS or packagegroup-twincast carries (the Debian
//! side of that map is `PACKAGES` in src/capture/elements.rs). Each check also runs on a
//! deliberately drifted copy of the layer text, so a check that cannot fail fails here.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::*;
use gstreamer as gst;
use gstreamer::prelude::PluginFeatureExt;

const LAYER: &str = "yocto/meta-twincast";
const RECIPE: &str = "yocto/meta-twincast/recipes-multimedia/twincast/twincast_0.1.0.bb";
const INCLUDE: &str = "yocto/meta-twincast/recipes-multimedia/twincast/twincast-crates.inc";

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// BitBake variables

/// The words of every `VAR = "…"` / `VAR += "…"` / `VAR:append:<override> = " …"` in `text`
/// (overrides such as `:twincast-box` are taken as set: this layer's builds opt into them),
/// following backslash continuations (the values in this layer hold no quotes).
fn bb_words(text: &str, var: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for (at, _) in text.match_indices(var) {
        if at != 0 && !text[..at].ends_with('\n') {
            continue;
        }
        let after = &text[at + var.len()..];
        // `:append:twincast-box = …` is the same variable; `-dev = …` or `[x] = …` is another.
        let after = match after.strip_prefix(':') {
            Some(overrides) => overrides.trim_start_matches(|c: char| c != ' ' && c != '\n'),
            None => after,
        };
        let Some(value) = after
            .strip_prefix(' ')
            .map(str::trim_start)
            .and_then(|op| ["+=", "?=", "="].iter().find_map(|o| op.strip_prefix(o)))
            .map(str::trim_start)
            .and_then(|v| v.strip_prefix('"'))
        else {
            continue;
        };
        let end = value.find('"').unwrap_or(value.len());
        words.extend(
            value[..end]
                .split_whitespace()
                .filter(|w| *w != "\\")
                .map(str::to_string),
        );
    }
    words
}

/// The layer's text: the twincast recipe, the packagegroup and every bbappend, keyed by the
/// path under the layer (tests replace one entry with a drifted copy).
fn layer_files() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "bb" || e == "bbappend")
            {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let root = repo_root().join(LAYER);
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Crates include == Cargo.lock at SRCREV

/// (name, version) -> checksum of every crates.io package in a Cargo.lock.
fn lock_crates(lock: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.strip_prefix(" = \""))
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_string)
            })
        };
        let registry = field("source")
            .is_some_and(|s| s == "registry+https://github.com/rust-lang/crates.io-index");
        if let (true, Some(name), Some(version), Some(sum)) =
            (registry, field("name"), field("version"), field("checksum"))
        {
            out.insert((name, version), sum);
        }
    }
    out
}

/// What the include gets wrong against `lock`: crates missing or extra, checksums missing or
/// wrong. Empty when bitbake can fetch exactly the crates cargo needs offline.
fn crates_drift(lock: &str, include: &str) -> Vec<String> {
    let want = lock_crates(lock);
    let listed: BTreeSet<(String, String)> = include
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("crate://crates.io/"))
        .filter_map(|w| w.split_once('/'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let sums: BTreeMap<String, String> = include
        .lines()
        .filter_map(|l| l.strip_prefix("SRC_URI["))
        .filter_map(|l| l.split_once(".sha256sum] = \""))
        .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
        .collect();
    let mut drift = Vec::new();
    for ((name, version), sum) in &want {
        let key = (name.clone(), version.clone());
        if !listed.contains(&key) {
            drift.push(format!("{name} {version} is not in SRC_URI"));
        }
        match sums.get(&format!("{name}-{version}")) {
            Some(s) if s == sum => {}
            Some(s) => drift.push(format!("{name} {version}: sha256sum {s}, Cargo.lock {sum}")),
            None => drift.push(format!("{name} {version} has no sha256sum")),
        }
    }
    for (name, version) in listed.iter().filter(|k| !want.contains_key(*k)) {
        drift.push(format!("{name} {version} is listed but not in Cargo.lock"));
    }
    drift
}

fn git(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("git")
        .current_dir(repo_root())
        .args(args)
        .output()
        .expect("git runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn srcrev(recipe: &str) -> String {
    let rev = recipe
        .lines()
        .find_map(|l| l.strip_prefix("SRCREV = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("the recipe has a SRCREV = \"…\" line");
    assert!(
        rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
        "SRCREV {rev} is not a full commit id"
    );
    rev.to_string()
}

/// Cargo.lock at the recipe's SRCREV, which must be a commit in HEAD's history (CI clones main
/// with its full history; a rebase or squash of main orphans it: `scripts/gen-yocto-crates
/// --bump` names a new one).
fn lock_at_srcrev() -> (String, String) {
    let rev = srcrev(&read(RECIPE));
    let (ok, _, err) = git(&["merge-base", "--is-ancestor", &rev, "HEAD"]);
    assert!(
        ok,
        "SRCREV {rev} in {RECIPE} is not a commit in HEAD's history ({err}); \
         run scripts/gen-yocto-crates --bump"
    );
    let (ok, lock, err) = git(&["show", &format!("{rev}:Cargo.lock")]);
    assert!(ok, "git show {rev}:Cargo.lock: {err}");
    (rev, lock)
}

#[test]
fn crates_include_lists_the_crates_of_the_srcrev_cargo_lock() {
    let (rev, lock) = lock_at_srcrev();
    let drift = crates_drift(&lock, &read(INCLUDE));
    assert!(
        drift.is_empty(),
        "{INCLUDE} drifted from Cargo.lock at SRCREV {rev} (run scripts/gen-yocto-crates \
         --bump):\n  {}",
        drift.join("\n  ")
    );
    assert!(
        lock_crates(&lock).len() > 100,
        "a Cargo.lock with its crates"
    );
    // The layer builds the dependencies main has now: the working Cargo.lock is SRCREV's.
    let drift = crates_drift(&read("Cargo.lock"), &read(INCLUDE));
    assert!(
        drift.is_empty(),
        "Cargo.lock changed since SRCREV {rev}: commit it, run scripts/gen-yocto-crates --bump \
         and commit the recipe and the include:\n  {}",
        drift.join("\n  ")
    );
}

#[test]
fn gen_yocto_crates_check_agrees() {
    let script = repo_root().join("scripts/gen-yocto-crates");
    let (ok, out, err) = run(script.to_str().unwrap(), &["--check"]);
    assert!(ok, "{out}{err}");
}

#[test]
fn crates_check_fails_on_a_drifted_include() {
    let (_, lock) = lock_at_srcrev();
    let include = read(INCLUDE);
    let crates = lock_crates(&lock);
    let ((name, version), sum) = crates.iter().next().expect("a crate");

    let dropped: String = include
        .lines()
        .filter(|l| !l.contains(&format!("crate://crates.io/{name}/{version} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let drift = crates_drift(&lock, &dropped);
    assert_eq!(drift, [format!("{name} {version} is not in SRC_URI")]);

    let wrong_sum = include.replace(sum.as_str(), &"0".repeat(64));
    let drift = crates_drift(&lock, &wrong_sum);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].contains("sha256sum"), "{drift:?}");

    let extra = include.replacen(
        "SRC_URI += \"\\\n",
        "SRC_URI += \"\\\n    crate://crates.io/rustls-pemfile/2.2.0 \\\n",
        1,
    );
    let drift = crates_drift(&lock, &extra);
    assert_eq!(
        drift,
        ["rustls-pemfile 2.2.0 is listed but not in Cargo.lock"]
    );
}

#[test]
fn license_checksum_matches_the_srcrev_cargo_toml() {
    let recipe = read(RECIPE);
    let rev = srcrev(&recipe);
    let (ok, toml, err) = git(&["show", &format!("{rev}:Cargo.toml")]);
    assert!(ok, "git show {rev}:Cargo.toml: {err}");
    let chk = recipe
        .lines()
        .find_map(|l| l.strip_prefix("LIC_FILES_CHKSUM = \"file://Cargo.toml;"))
        .expect("LIC_FILES_CHKSUM on Cargo.toml");
    let param = |k: &str| {
        chk.split(';')
            .find_map(|p| p.strip_prefix(k))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap_or_else(|| panic!("LIC_FILES_CHKSUM has no {k}"))
    };
    let line: usize = param("beginline=").parse().unwrap();
    assert_eq!(param("endline=").parse::<usize>().unwrap(), line);
    let text = format!("{}\n", toml.lines().nth(line - 1).unwrap_or_default());
    assert!(
        text.starts_with("license = "),
        "Cargo.toml line {line}: {text}"
    );
    let mut md5 = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum runs");
    use std::io::Write;
    md5.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = md5.wait_with_output().unwrap();
    let sum = String::from_utf8_lossy(&out.stdout);
    assert_eq!(sum.split_whitespace().next(), Some(param("md5=").as_str()));
}

// ---------------------------------------------------------------------------------------------
// Every element the code creates -> an OpenEmbedded package the layer carries

/// Where the layer must carry an element's package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// Every default pipeline or input kind needs it: the twincast recipe's RDEPENDS.
    Needed,
    /// Hardware encoders, slates, ALSA: RDEPENDS or RRECOMMENDS of twincast, or the
    /// packagegroup (openembedded-core part).
    Optional,
    /// Only with a meta-openembedded layer: the packagegroup bbappend in
    /// dynamic-layers/<layer>/.
    Dynamic(&'static str),
    /// No recipe for it in openembedded-core or meta-openembedded; the string says where it
    /// comes from (README.md repeats it).
    Outside,
}

/// Element -> OpenEmbedded package (openembedded-core 1.28 names: one package per plugin,
/// `<recipe>-<plugin>`) and where the layer carries it.
const OE_PACKAGES: &[(&str, &str, Carry)] = &[
    ("filesrc", "gstreamer1.0", Carry::Needed),
    ("tee", "gstreamer1.0", Carry::Needed),
    ("queue", "gstreamer1.0", Carry::Needed),
    ("capsfilter", "gstreamer1.0", Carry::Needed),
    (
        "videotestsrc",
        "gstreamer1.0-plugins-base-videotestsrc",
        Carry::Needed,
    ),
    (
        "audiotestsrc",
        "gstreamer1.0-plugins-base-audiotestsrc",
        Carry::Needed,
    ),
    (
        "videoconvert",
        "gstreamer1.0-plugins-base-videoconvertscale",
        Carry::Needed,
    ),
    (
        "videoscale",
        "gstreamer1.0-plugins-base-videoconvertscale",
        Carry::Needed,
    ),
    (
        "videorate",
        "gstreamer1.0-plugins-base-videorate",
        Carry::Needed,
    ),
    (
        "audioconvert",
        "gstreamer1.0-plugins-base-audioconvert",
        Carry::Needed,
    ),
    (
        "audioresample",
        "gstreamer1.0-plugins-base-audioresample",
        Carry::Needed,
    ),
    (
        "audiorate",
        "gstreamer1.0-plugins-base-audiorate",
        Carry::Needed,
    ),
    (
        "uridecodebin",
        "gstreamer1.0-plugins-base-playback",
        Carry::Needed,
    ),
    (
        "decodebin",
        "gstreamer1.0-plugins-base-playback",
        Carry::Needed,
    ),
    ("appsink", "gstreamer1.0-plugins-base-app", Carry::Needed),
    ("appsrc", "gstreamer1.0-plugins-base-app", Carry::Needed),
    // The typefind element is a core one; the type finders decodebin runs in it are no element
    // (gstreamer1.0-plugins-base-typefindfunctions, in RDEPENDS all the same).
    ("typefind", "gstreamer1.0", Carry::Needed),
    ("udpsrc", "gstreamer1.0-plugins-good-udp", Carry::Needed),
    (
        "rtpjitterbuffer",
        "gstreamer1.0-plugins-good-rtpmanager",
        Carry::Needed,
    ),
    (
        "rtpmp2tdepay",
        "gstreamer1.0-plugins-good-rtp",
        Carry::Needed,
    ),
    ("rtspsrc", "gstreamer1.0-plugins-good-rtsp", Carry::Needed),
    (
        "v4l2src",
        "gstreamer1.0-plugins-good-video4linux2",
        Carry::Needed,
    ),
    (
        "v4l2h264enc",
        "gstreamer1.0-plugins-good-video4linux2",
        Carry::Optional,
    ),
    (
        "aacparse",
        "gstreamer1.0-plugins-good-audioparsers",
        Carry::Needed,
    ),
    ("qtdemux", "gstreamer1.0-plugins-good-isomp4", Carry::Needed),
    (
        "h264parse",
        "gstreamer1.0-plugins-bad-videoparsersbad",
        Carry::Needed,
    ),
    (
        "tsdemux",
        "gstreamer1.0-plugins-bad-mpegtsdemux",
        Carry::Needed,
    ),
    ("x264enc", "gstreamer1.0-plugins-ugly-x264", Carry::Needed),
    ("avenc_aac", "gstreamer1.0-libav", Carry::Needed),
    ("avdec_h264", "gstreamer1.0-libav", Carry::Needed),
    ("avdec_aac", "gstreamer1.0-libav", Carry::Needed),
    ("vah264enc", "gstreamer1.0-plugins-bad-va", Carry::Optional),
    ("alsasrc", "gstreamer1.0-plugins-base-alsa", Carry::Optional),
    (
        "textoverlay",
        "gstreamer1.0-plugins-base-pango",
        Carry::Optional,
    ),
    (
        "imagefreeze",
        "gstreamer1.0-plugins-good-imagefreeze",
        Carry::Optional,
    ),
    ("pngdec", "gstreamer1.0-plugins-good-png", Carry::Optional),
    ("jpegdec", "gstreamer1.0-plugins-good-jpeg", Carry::Optional),
    (
        "srtsrc",
        "gstreamer1.0-plugins-bad-srt",
        Carry::Dynamic("multimedia-layer"),
    ),
    (
        "openh264enc",
        "gstreamer1.0-plugins-bad-openh264",
        Carry::Dynamic("multimedia-layer"),
    ),
    (
        "voaacenc",
        "gstreamer1.0-plugins-bad-voaacenc",
        Carry::Dynamic("multimedia-layer"),
    ),
    (
        "vaapih264enc",
        "gstreamer-vaapi, dropped from openembedded-core (vah264enc replaces it)",
        Carry::Outside,
    ),
    (
        "nvv4l2h264enc",
        "meta-tegra (NVIDIA Jetson BSP)",
        Carry::Outside,
    ),
];

/// Elements that decodebin/uridecodebin plug in for the inputs (MPEG-TS over UDP/RTP/SRT, MP4
/// files, RTSP), so the code never names them.
const AUTOPLUGGED: &[&str] = &["typefind", "qtdemux", "tsdemux"];

/// Literals in src/ that happen to name an element factory but are no element the daemon creates.
const NOT_ELEMENTS: &[(&str, &str)] = &[
    (
        "pipeline",
        "the log prefix of a pipeline message (src/capture/sources/pipeline.rs)",
    ),
    (
        "smpte",
        "a videotestsrc pattern (src/capture/sources/build.rs)",
    ),
    (
        "volume",
        "an audiotestsrc property (src/capture/sources/build.rs)",
    ),
    (
        "smooth",
        "the Smooth ingest protocol (src/config/values.rs)",
    ),
];

/// The plugins openembedded-core builds only with a PACKAGECONFIG: package -> (bbappend under
/// the layer that must enable it, option).
const PACKAGECONFIGS: &[(&str, &str, &str)] = &[
    (
        "gstreamer1.0-plugins-ugly-x264",
        "recipes-multimedia/gstreamer/gstreamer1.0-plugins-ugly_%.bbappend",
        "x264",
    ),
    (
        "gstreamer1.0-plugins-bad-va",
        "recipes-multimedia/gstreamer/gstreamer1.0-plugins-bad_%.bbappend",
        "va",
    ),
    (
        "gstreamer1.0-plugins-bad-srt",
        "dynamic-layers/multimedia-layer/recipes-multimedia/gstreamer/gstreamer1.0-plugins-bad_%.bbappend",
        "srt",
    ),
    (
        "gstreamer1.0-plugins-bad-openh264",
        "dynamic-layers/multimedia-layer/recipes-multimedia/gstreamer/gstreamer1.0-plugins-bad_%.bbappend",
        "openh264",
    ),
    (
        "gstreamer1.0-plugins-bad-voaacenc",
        "dynamic-layers/multimedia-layer/recipes-multimedia/gstreamer/gstreamer1.0-plugins-bad_%.bbappend",
        "voaacenc",
    ),
];

/// Every string literal in `source` (escapes kept as written).
fn string_literals(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find('"') {
        let body = &rest[start + 1..];
        let mut escaped = false;
        let Some(end) = body.char_indices().find_map(|(i, c)| {
            let end = !escaped && c == '"';
            escaped = !escaped && c == '\\';
            end.then_some(i)
        }) else {
            break;
        };
        out.push(&body[..end]);
        rest = &body[end + 1..];
    }
    out
}

fn rust_sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests build pipelines of their own; the box never runs them.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            out.push((path.display().to_string(), text.to_string()));
        }
    }
}

/// The GStreamer elements the daemon can create: every element of `PACKAGES` in
/// src/capture/elements.rs (hardware encoders this box may lack included), every literal
/// handed to a factory call, and every other literal in src/ that names an element factory
/// this box's GStreamer registry knows (the arrays of decode chains, the slate decoders).
fn elements_in_code() -> BTreeMap<String, String> {
    gst::init().expect("GStreamer initialises");
    let mut sources = Vec::new();
    rust_sources(&repo_root().join("src"), &mut sources);
    let mut found = BTreeMap::new();
    let elements_rs = read("src/capture/elements.rs");
    let table = elements_rs
        .split("const PACKAGES")
        .nth(1)
        .and_then(|t| t.split("];").next())
        .expect("PACKAGES in src/capture/elements.rs");
    let table_names: Vec<&str> = string_literals(table).into_iter().step_by(2).collect();
    assert!(table_names.len() > 20, "PACKAGES parsed: {table_names:?}");
    for name in table_names {
        found.insert(name.to_string(), "src/capture/elements.rs PACKAGES".into());
    }
    for (path, text) in &sources {
        for call in [
            "make(\"",
            "element(\"",
            "require(\"",
            "has_element(\"",
            "ElementFactory::find(\"",
        ] {
            for piece in text.split(call).skip(1) {
                if let Some((name, _)) = piece.split_once('"') {
                    found.entry(name.to_string()).or_insert(path.clone());
                }
            }
        }
        for literal in string_literals(text) {
            let plain = !literal.is_empty()
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            let excluded = NOT_ELEMENTS.iter().any(|(n, _)| *n == literal);
            if plain && !excluded && gst::ElementFactory::find(literal).is_some() {
                found.entry(literal.to_string()).or_insert(path.clone());
            }
        }
    }
    found
}

/// What the layer fails to carry: elements without an OpenEmbedded mapping, mapped packages
/// that no RDEPENDS/RRECOMMENDS carries where `Carry` says, plugins whose PACKAGECONFIG no
/// bbappend enables, and stale map entries.
fn carry_drift(
    elements: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Vec<String> {
    let file = |rel: &str| files.get(rel).map(String::as_str).unwrap_or_default();
    let recipe = file("recipes-multimedia/twincast/twincast_0.1.0.bb");
    let group = file("recipes-core/packagegroups/packagegroup-twincast.bb");
    let rdepends = bb_words(recipe, "RDEPENDS:${PN}");
    let mut optional = rdepends.clone();
    optional.extend(bb_words(recipe, "RRECOMMENDS:${PN}"));
    optional.extend(bb_words(group, "RDEPENDS:${PN}"));
    optional.extend(bb_words(group, "RRECOMMENDS:${PN}"));
    let dynamic = |layer: &str| {
        let rel = format!(
            "dynamic-layers/{layer}/recipes-core/packagegroups/packagegroup-twincast.bbappend"
        );
        bb_words(file(&rel), "RDEPENDS:${PN}")
    };

    let mut drift = Vec::new();
    let map: BTreeMap<&str, (&str, Carry)> =
        OE_PACKAGES.iter().map(|(e, p, c)| (*e, (*p, *c))).collect();
    for (element, from) in elements {
        if !map.contains_key(element.as_str()) {
            drift.push(format!(
                "{element} ({from}) has no OpenEmbedded package in tests/yocto_layer.rs OE_PACKAGES"
            ));
        }
    }
    for (element, (package, carry)) in &map {
        if !elements.contains_key(*element) && !AUTOPLUGGED.contains(element) {
            drift.push(format!(
                "{element} is mapped but the code no longer creates it"
            ));
        }
        let carried = match carry {
            Carry::Needed => rdepends.contains(*package),
            Carry::Optional => optional.contains(*package),
            Carry::Dynamic(layer) => dynamic(layer).contains(*package),
            Carry::Outside => true,
        };
        if !carried {
            drift.push(format!("{element}: {package} is not carried ({carry:?})"));
        }
    }
    for (package, bbappend, option) in PACKAGECONFIGS {
        if bb_words(file(bbappend), "PACKAGECONFIG").contains(*option) {
            continue;
        }
        drift.push(format!(
            "{package}: {bbappend} does not enable PACKAGECONFIG {option}"
        ));
    }
    drift
}

/// openembedded-core names a plugin's package `<recipe>-<plugin file name>`; checks each mapping
/// against the plugin this box's GStreamer loads the element from (an element the box lacks,
/// such as the hardware encoders, is checked where it exists: on CI's and the boxes').
#[test]
fn oe_package_names_follow_the_plugins_the_elements_come_from() {
    gst::init().expect("GStreamer initialises");
    let mut checked = 0;
    for (element, package, carry) in OE_PACKAGES {
        if *carry == Carry::Outside {
            continue;
        }
        let Some(plugin) = gst::ElementFactory::find(element).and_then(|f| f.plugin()) else {
            continue;
        };
        let (name, source) = (plugin.plugin_name(), plugin.source());
        let expected = match source.as_str() {
            "gstreamer" => "gstreamer1.0".to_string(),
            "gst-libav" => "gstreamer1.0-libav".to_string(),
            set => format!("{}-{name}", set.replace("gst-", "gstreamer1.0-")),
        };
        assert_eq!(
            *package, expected,
            "{element} comes from plugin {name} of {source}"
        );
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} elements exist on this box");
}

#[test]
fn every_element_the_code_creates_is_carried_by_the_layer() {
    let elements = elements_in_code();
    for must in [
        "audiorate",
        "x264enc",
        "srtsrc",
        "avdec_h264",
        "pngdec",
        "v4l2src",
    ] {
        assert!(
            elements.contains_key(must),
            "{must} not found in src/: {elements:?}"
        );
    }
    let drift = carry_drift(&elements, &layer_files());
    assert!(
        drift.is_empty(),
        "the layer drifted from the code:\n  {}",
        drift.join("\n  ")
    );
}

#[test]
fn carry_check_fails_on_drifted_rdepends_and_bbappends() {
    let elements = elements_in_code();
    let files = layer_files();
    let recipe = "recipes-multimedia/twincast/twincast_0.1.0.bb";

    // The bug of issue 16: audiorate's package missing from RDEPENDS.
    let mut drifted = files.clone();
    let text = files[recipe].replace("gstreamer1.0-plugins-base-audiorate \\\n", "");
    assert_ne!(text, files[recipe]);
    drifted.insert(recipe.into(), text);
    assert_eq!(
        carry_drift(&elements, &drifted),
        ["audiorate: gstreamer1.0-plugins-base-audiorate is not carried (Needed)"]
    );

    // x264 without the PACKAGECONFIG that builds it.
    let ugly = "recipes-multimedia/gstreamer/gstreamer1.0-plugins-ugly_%.bbappend";
    let mut drifted = files.clone();
    drifted.insert(ugly.into(), String::new());
    let drift = carry_drift(&elements, &drifted);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].contains("PACKAGECONFIG x264"), "{drift:?}");

    // A new element in the code without a mapping.
    let mut more = elements.clone();
    more.insert("fdkaacenc".into(), "a new encoder".into());
    let drift = carry_drift(&more, &files);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0].starts_with("fdkaacenc (a new encoder) has no"),
        "{drift:?}"
    );

    // SRT moved out of its dynamic layer's packagegroup.
    let srt =
        "dynamic-layers/multimedia-layer/recipes-core/packagegroups/packagegroup-twincast.bbappend";
    let mut drifted = files.clone();
    drifted.insert(
        srt.into(),
        files[srt].replace("gstreamer1.0-plugins-bad-srt", ""),
    );
    let drift = carry_drift(&elements, &drifted);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].starts_with("srtsrc:"), "{drift:?}");
}

#[test]
fn layer_resolves_against_openembedded_core_alone() {
    let files = layer_files();
    let conf = read(&format!("{LAYER}/conf/layer.conf"));
    assert!(conf.contains("LAYERDEPENDS_twincast = \"core\""), "{conf}");
    // meta-openembedded recipes are named only under dynamic-layers/, parsed when that layer
    // is in the build.
    for (rel, text) in &files {
        if rel.starts_with("dynamic-layers/") {
            let layer = rel.split('/').nth(1).unwrap_or_default();
            assert!(
                conf.contains(&format!("{layer}:${{LAYERDIR}}/dynamic-layers/{layer}/")),
                "{rel}: BBFILES_DYNAMIC does not name {layer}"
            );
            continue;
        }
        for var in ["RDEPENDS:${PN}", "RRECOMMENDS:${PN}", "DEPENDS"] {
            for meta_oe in ["chrony", "v4l-utils", "srt", "openh264", "vo-aacenc"] {
                assert!(
                    !bb_words(text, var).contains(meta_oe),
                    "{rel}: {var} names {meta_oe}, which only meta-openembedded has"
                );
            }
        }
    }
    let recipe = &files["recipes-multimedia/twincast/twincast_0.1.0.bb"];
    assert!(
        recipe.contains("\nS = \"${UNPACKDIR}/${BP}\"\n"),
        "S is set"
    );
    assert!(
        recipe.contains(";destsuffix=${BP}\""),
        "the git source unpacks into S"
    );
    assert!(
        bb_words(recipe, "GROUPADD_PARAM:${PN}").contains("render"),
        "render exists before useradd"
    );
    assert!(
        bb_words(recipe, "RDEPENDS:${PN}").contains("gstreamer1.0-plugins-base-typefindfunctions"),
        "decodebin finds no stream type without the type finders"
    );
    assert!(recipe.contains("TWINCAST_MIN_RUST = \"1.95\""));
    let toml = read("Cargo.toml");
    assert!(
        toml.contains("rust-version = \"1.95\""),
        "TWINCAST_MIN_RUST follows Cargo.toml"
    );
}

#[test]
fn bb_words_reads_assignments_and_continuations() {
    let text = "RDEPENDS:${PN} = \"a \\\n    b \\\n    \"\nRDEPENDS:${PN}-dev = \"x\"\n\
                RDEPENDS:${PN} += \"c\"\nPACKAGECONFIG:append:twincast-box = \" x264\"\n# RDEPENDS:${PN} = \"no\"\n";
    let words: Vec<String> = bb_words(text, "RDEPENDS:${PN}").into_iter().collect();
    assert_eq!(words, ["a", "b", "c"]);
    let words: Vec<String> = bb_words(text, "PACKAGECONFIG").into_iter().collect();
    assert_eq!(words, ["x264"]);
}
