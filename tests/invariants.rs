//! The architecture invariants of ARCHITECTURE.md that a test can check without a daemon: the
//! media crate's dependency list, the origin's request paths never reaching the filesystem, and
//! no import cycle between modules.
//! (The bounded queues' counted drops are tested beside their code: the hub in src/hub.rs, the
//! `/events` readers in src/control/mod.rs, the track monitors in src/control/state.rs, the
//! publish backlogs and budget in src/publish/, the packager in src/package.rs.)

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use twincast::hub::{Hub, InitSegment};
use twincast::origin::{Origin, OriginSettings};
use twincast_media::{Codec, TrackInfo};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Crates that do I/O (sockets, files, processes, an event loop) or bind a C library that does.
fn is_io_crate(name: &str) -> bool {
    const EXACT: [&str; 13] = [
        "libc",
        "nix",
        "mio",
        "socket2",
        "h2",
        "smol",
        "curl",
        "ureq",
        "polling",
        "gio",
        "memmap2",
        "signal-hook",
        "rustix",
    ];
    const PREFIXES: [&str; 14] = [
        "tokio",
        "gstreamer",
        "glib",
        "gio-",
        "hyper",
        "axum",
        "reqwest",
        "rustls",
        "webpki",
        "async-",
        "futures-io",
        "tower",
        "openssl",
        "systemd",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The names under every `[dependencies]` and `[build-dependencies]` table of a Cargo.toml,
/// target-specific ones included (dev-dependencies only build tests and benches).
fn library_dependencies(manifest: &toml::Table) -> BTreeSet<String> {
    let mut tables = vec![manifest];
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        tables.extend(targets.values().filter_map(|t| t.as_table()));
    }
    tables
        .into_iter()
        .flat_map(|t| ["dependencies", "build-dependencies"].map(|k| t.get(k)))
        .flatten()
        .filter_map(|d| d.as_table())
        .flat_map(|d| d.keys().cloned())
        .collect()
}

/// Architecture Invariant: `twincast-media` depends on no I/O crate.
#[test]
fn the_media_crate_depends_on_no_io_crate() {
    let manifest: toml::Table = read(&repo_root().join("media/Cargo.toml"))
        .parse()
        .expect("media/Cargo.toml is TOML");
    let direct = library_dependencies(&manifest);
    assert!(direct.contains("thiserror"), "the parser found {direct:?}");
    let io: Vec<_> = direct.iter().filter(|d| is_io_crate(d)).collect();
    assert!(
        io.is_empty(),
        "media/Cargo.toml depends on I/O crates: {io:?}"
    );

    // What those bring along, from Cargo.lock (a registry package's entry lists its normal
    // and build dependencies, never its dev-dependencies).
    let lock: toml::Table = read(&repo_root().join("Cargo.lock"))
        .parse()
        .expect("Cargo.lock is TOML");
    let packages = lock
        .get("package")
        .and_then(|p| p.as_array())
        .expect("Cargo.lock lists packages");
    let mut deps_of: HashMap<String, Vec<String>> = HashMap::new();
    for p in packages {
        let Some(name) = p.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let deps = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .filter_map(|d| d.split(' ').next())
            .map(str::to_string);
        deps_of.entry(name.to_string()).or_default().extend(deps);
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = direct.into_iter().collect();
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            todo.extend(deps_of.get(&name).into_iter().flatten().cloned());
        }
    }
    assert!(
        seen.len() > deps_of.get("thiserror").map_or(0, Vec::len),
        "the walk through Cargo.lock found only {seen:?}"
    );
    let io: Vec<_> = seen.iter().filter(|d| is_io_crate(d)).collect();
    assert!(
        io.is_empty(),
        "twincast-media pulls in I/O crates through its dependencies: {io:?} (of {seen:?})"
    );
}

/// The same invariant for what the compiler cannot see in Cargo.toml: the standard library's
/// I/O modules.
#[test]
fn the_media_crate_uses_no_std_io_module() {
    const FORBIDDEN: [&str; 8] = [
        "std::fs",
        "std::net",
        "std::process",
        "std::thread",
        "std::env",
        "std::os",
        "std::io::stdin",
        "std::io::stdout",
    ];
    let mut files = vec![repo_root().join("media/src")];
    let mut offences = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).expect("read media/src");
            files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = read(&path);
            for (n, line) in text.lines().enumerate() {
                if let Some(f) = FORBIDDEN.iter().find(|f| line.contains(*f)) {
                    offences.push(format!("{}:{}: {f}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(offences.is_empty(), "I/O in the media crate: {offences:#?}");
}

fn video_init() -> Arc<InitSegment> {
    Arc::new(InitSegment {
        info: TrackInfo {
            id: 1,
            name: "v".into(),
            timescale: 90_000,
            codec: Codec::H264 {
                avcc: vec![1, 0x64, 0, 0x1f, 0xff, 0xe0, 0xe1, 0],
                width: 640,
                height: 360,
            },
            bitrate: 400_000,
        },
        bytes: Bytes::from_static(b"the init segment"),
    })
}

async fn get(origin: &Arc<Origin>, path: &str) -> (u16, Bytes) {
    let req = hyper::Request::builder()
        .uri(path)
        .body(())
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let resp = twincast::origin::http::handle(origin, &req).await;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, body)
}

/// Architecture Invariant: the origin routes by parsed path components; it never joins a
/// request path onto the filesystem. A request that climbs out of the URL layout, spelled any
/// way, is refused; nothing next to or above the DVR directory is ever served.
#[tokio::test]
async fn no_request_path_reaches_the_filesystem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dvr = dir.path().join("dvr");
    std::fs::create_dir_all(dvr.join("v")).expect("dvr dir");
    let secret = b"NOT-FOR-THE-WEB";
    for planted in [
        dir.path().join("passwd"),
        dvr.join("passwd"),
        dvr.join("v/passwd"),
        dvr.join("v/1.m4s"),
    ] {
        std::fs::write(planted, secret).expect("plant a file");
    }
    let hub = Hub::for_test(["v"]);
    let mut settings = OriginSettings::new(1, 60_000_000_000, (30, 1), 1_000_000_000);
    settings.dvr_dir = Some(dvr.clone());
    settings.dvr_max_bytes = 1 << 20;
    let origin = Origin::new(settings, &hub);
    origin.clone().set_init(0, Some(video_init())).await;

    // The layout itself is served.
    let (status, body) = get(&origin, "/live/v/init.mp4").await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"the init segment");

    for path in [
        "/live/../passwd",
        "/live/v/../passwd",
        "/live/v/../../passwd",
        "/live/v/../../../passwd",
        "/live/%2e%2e/passwd",
        "/live/v/%2e%2e/passwd",
        "/live/v/%2E%2E/%2E%2E/passwd",
        "/live/v/..%2fpasswd",
        "/live/v/..%2F..%2Fpasswd",
        "/live/v/%2e%2e%2f%2e%2e%2fpasswd",
        "/live/v/..%5c..%5cpasswd",
        "/live/v/passwd",
        "/live/v/1.m4s",
        "/live/v/./1.m4s",
        "/live/v/init.mp4/..",
        "/live/./v/init.mp4",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/live/v/%00",
    ] {
        let (status, body) = get(&origin, path).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(
            !body.windows(secret.len()).any(|w| w == secret),
            "{path}: served a file from disk"
        );
    }
}

/// The `.rs` files under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).expect("read a source folder");
            todo.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A file's production code: up to its `#[cfg(test)] mod`, without comments (a doc link is not
/// an import).
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| {
                let next = next.trim_start();
                ["mod ", "pub mod ", "pub(crate) mod "]
                    .iter()
                    .any(|m| next.starts_with(m))
            })
        {
            break;
        }
        let code = line.find("//").map_or(line, |i| &line[..i]);
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The first-level path segments named after `prefix` at `text[at..]`: `a` of `a::X`, and each
/// item's first segment of `{a::X, b}`.
fn path_heads(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(inner) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut depth = 0usize;
    let mut items = Vec::new();
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&inner[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.into_iter().map(ident).collect()
}

/// The module graph of one crate, at two levels: each top-level module (`capture`), and each
/// child of one (`capture::grid`). An edge is a `crate::…` or `super::…` path in production
/// code. Test-only files (`tests.rs`, `*_tests.rs`, `test_support.rs`) are left out.
fn module_edges(src: &Path) -> BTreeSet<(String, String)> {
    let exists = |parts: &[&str]| {
        let p = parts.iter().fold(src.to_path_buf(), |p, s| p.join(s));
        p.is_dir() || p.with_extension("rs").is_file()
    };
    // The node of a module path: its first two segments where the second is a module.
    let node = |parts: &[&str]| -> Option<String> {
        match parts {
            [] => None,
            [a] => Some(a.to_string()),
            [a, b, ..] if exists(&[a, b]) => Some(format!("{a}::{b}")),
            [a, ..] => Some(a.to_string()),
        }
    };
    let mut edges = BTreeSet::new();
    for file in rust_files(src) {
        let rel = file
            .strip_prefix(src)
            .expect("under src")
            .with_extension("");
        let mut module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            module.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            module.pop();
        }
        let stem = module.last().cloned().unwrap_or_default();
        if module.is_empty() || stem.ends_with("tests") || stem == "test_support" {
            continue;
        }
        let parts: Vec<&str> = module.iter().map(String::as_str).collect();
        let Some(from) = node(&parts) else { continue };
        let code = production_code(&read(&file));
        for (prefix, base) in [("crate::", &[][..]), ("super::", &parts[..parts.len() - 1])] {
            for (i, _) in code.match_indices(prefix) {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                    continue;
                }
                for head in path_heads(&code[i + prefix.len()..]) {
                    let mut target: Vec<&str> = base.to_vec();
                    if !head.is_empty() && head != "self" {
                        target.push(&head);
                    }
                    if let Some(to) = node(&target).filter(|to| *to != from) {
                        edges.insert((from.clone(), to));
                    }
                }
            }
        }
    }
    edges
}

/// A cycle in `edges`, if there is one, as the path that closes it.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: HashMap<&str, Vec<&str>> = HashMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    // Depth-first search with colours: on the stack (grey) or finished (black).
    fn visit<'a>(
        v: &'a str,
        next: &HashMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == v) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(v.to_string());
            return Some(cycle);
        }
        if !done.insert(v) {
            return None;
        }
        stack.push(v);
        for w in next.get(v).into_iter().flatten() {
            if let Some(cycle) = visit(w, next, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    let mut starts: Vec<&str> = next.keys().copied().collect();
    starts.sort();
    starts
        .into_iter()
        .find_map(|v| visit(v, &next, &mut Vec::new(), &mut done))
}

/// Architecture Invariant: no import cycle between modules, in either crate. Two levels are
/// checked: between top-level modules (`config` never reaches back to `input`), and between the
/// children of one module (`publish::net` and `publish::tcp`). A module and its own parent may
/// use each other (a `mod.rs` and the files under it are one module to the reader).
#[test]
fn no_module_import_cycle() {
    for src in ["src", "media/src"] {
        let edges = module_edges(&repo_root().join(src));
        assert!(
            edges.len() > 10,
            "{src}: the scan found only {} edges: {edges:?}",
            edges.len()
        );
        let top: BTreeSet<(String, String)> = edges
            .iter()
            .map(|(a, b)| (head(a).to_string(), head(b).to_string()))
            .filter(|(a, b)| a != b)
            .collect();
        let siblings: BTreeSet<(String, String)> = edges
            .iter()
            .filter(|(a, b)| a.contains("::") && b.contains("::") && head(a) == head(b))
            .cloned()
            .collect();
        for (level, graph) in [("top-level modules", &top), ("sibling modules", &siblings)] {
            if let Some(cycle) = find_cycle(graph) {
                panic!(
                    "{src}: an import cycle between {level}: {}",
                    cycle.join(" → ")
                );
            }
        }
    }
}

fn head(node: &str) -> &str {
    node.split("::").next().unwrap_or(node)
}

/// The scan itself: it sees a cycle that is there.
#[test]
fn the_cycle_scan_sees_a_cycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    let write = |p: &str, t: &str| std::fs::write(src.join(p), t).expect("write");
    write("lib.rs", "pub mod a;\npub mod b;\n");
    write("a/mod.rs", "mod x;\nmod y;\nuse crate::b::B;\n");
    write("a/x.rs", "use super::{y::Y, X2};\n");
    write(
        "a/y.rs",
        "use super::x::X; // crate::b in a comment is not an edge\n",
    );
    write(
        "b.rs",
        "/// [`A`](crate::a::A) is a doc link\n#[cfg(test)]\nmod tests { use crate::a::A; }\n",
    );
    let edges = module_edges(src);
    let has = |a: &str, b: &str| edges.contains(&(a.to_string(), b.to_string()));
    assert!(
        has("a", "b") && has("a::x", "a::y") && has("a::y", "a::x"),
        "{edges:?}"
    );
    assert!(!edges.iter().any(|(a, _)| a == "b"), "{edges:?}");
    let cycle = find_cycle(&edges).expect("a::x ↔ a::y");
    assert!(cycle.contains(&"a::x".to_string()), "{cycle:?}");
}
