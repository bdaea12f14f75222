//! Replays every saved fuzz input (fuzz/corpus/T and fuzz/regressions/T)
//! through the same library entry point its `cargo fuzz` target calls, so the
//! ordinary test command covers the corpora without cargo-fuzz.

fn replay(target: &str, f: fn(&[u8])) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let (mut ran, mut failed) = (0, Vec::new());
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for p in dir.map(|e| e.unwrap().path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&p).unwrap();
            ran += 1;
            if std::panic::catch_unwind(|| f(&data)).is_err() {
                failed.push(p)
            }
        }
    }
    assert!(ran > 0, "no saved inputs for {target}");
    assert!(failed.is_empty(), "{} of {ran} inputs panicked: {failed:?}", failed.len());
}

// One #[test] per fuzz target below, each calling the target's library function.
