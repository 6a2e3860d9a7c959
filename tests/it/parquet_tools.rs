//! A built shard set is a plain Parquet dataset per stage: pyarrow, HF `datasets`, DuckDB and
//! polars read each stage folder with no glob, and `datasets` reads the build folder by stage
//! name (the configs of its `README.md`), each agreeing with the stage's manifest on the row count
//! and on the samples and tokens of every category.

use crate::util::{TestDir, repo, run_python};

#[test]
fn every_parquet_tool_reads_the_demos_stages_as_the_manifests_count_them() {
    let dir = TestDir::new();
    let demo = repo().join("recipes/demo.yaml");
    let build = dir.run(&["build", demo.to_str().unwrap(), "--out", "out", "--quiet"]);
    assert_eq!(build.code, 0, "{}", build.stderr);
    // A stage folder holds its shards and nothing else.
    for stage in ["warmup", "multitask", "sft"] {
        let names: Vec<String> = std::fs::read_dir(dir.path("out").join(stage))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.is_empty()
                && names
                    .iter()
                    .all(|n| mixtape_shards::layout::shard_index(n).is_some()),
            "{stage}: {names:?}"
        );
    }
    let stdout = run_python(
        "tests/python/read_with_parquet_tools.py",
        &[&dir.path("out")],
    );
    for tool in [
        "pyarrow.dataset",
        "datasets.load_dataset(parquet, data_dir)",
        "duckdb read_parquet",
        "polars.scan_parquet",
        "datasets.load_dataset(build, name=sft)",
    ] {
        assert!(
            stdout.contains(&format!("ok: {tool} reads stage")),
            "{tool}:\n{stdout}"
        );
    }
}
