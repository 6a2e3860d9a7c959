//! Fuzzes recipe loading: any bytes written as a recipe file must load as a recipe or as located
//! diagnostics that render, never panic, overflow the stack or exhaust memory (alias bombs, deep
//! nesting). Run with `cargo +nightly fuzz run check -- -max_total_time=600 -rss_limit_mb=1024`.
#![no_main]

use std::cell::OnceCell;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

thread_local! {
    /// One file per fuzzing process, rewritten for each input (the loader reads recipes by path).
    static PATH: OnceCell<PathBuf> = const { OnceCell::new() };
}

fuzz_target!(|data: &[u8]| {
    PATH.with(|cell| {
        let path = cell.get_or_init(|| std::env::temp_dir().join(format!("mixtape-fuzz-{}.yaml", std::process::id())));
        std::fs::write(path, data).expect("write the recipe");
        let loaded = mixtape_engine::recipe::load(path);
        assert!(loaded.recipe.is_some() || loaded.diagnostics.has_errors());
        for d in loaded.diagnostics.iter() {
            let _ = d.render(&loaded.sources);
        }
    });
});
