//! Builds and reads on object storage, against a real S3-compatible server (moto's, started per
//! test by `s3_server`) and, where faults are the point, through a proxy that injects them; and
//! against Azure's blob service emulator (Azurite, started by `azurite`) for `az://`, and a GCS
//! emulator (fake-gcs-server, started by `fake_gcs`) for reads of `gs://`.
//!
//! What must hold: a build into `s3://` writes the same bytes a build on disk writes, and resumes
//! after a kill; a second builder is refused; reading a stage back yields the same rows in the same
//! order as from disk, whatever the network does (503s, connections dropped mid-body), losing and
//! repeating nothing; a changed object is named with its URL and row group; `--images skip`
//! downloads the token columns and no image bytes; and the chunk cache, with a quarter of the data
//! set, downloads close to what an optimal cache would over three epochs.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::azurite::Azurite;
use crate::fake_gcs::FakeGcs;
use crate::s3_server::{FaultProxy, Faults, S3Server, request};
use crate::util::{TestDir, file_tree, run_python, small_recipe};

/// A test folder with the small recipe, and a server with bucket `data`.
fn setup() -> (TestDir, S3Server) {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let server = S3Server::start();
    server.create_bucket("data");
    (dir, server)
}

fn ok(out: &crate::util::Output) {
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

/// Every object under `prefix/` of bucket `data`, by key relative to the prefix.
fn objects(server: &S3Server, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    server
        .list_keys("data")
        .into_iter()
        .filter_map(|(key, _)| {
            let rel = key.strip_prefix(&format!("{prefix}/"))?.to_string();
            let response = request(&server.addr(), "GET", &format!("/data/{key}"), &[], b"");
            assert_eq!(response.status, 200, "GET {key}");
            Some((rel, response.body))
        })
        .collect()
}

fn put(server: &S3Server, key: &str, body: &[u8]) {
    let response = request(&server.addr(), "PUT", &format!("/data/{key}"), &[], body);
    assert_eq!(response.status, 200, "PUT {key}");
}

/// Uploads the local folder `dir` under `prefix/`.
fn upload(server: &S3Server, dir: &std::path::Path, prefix: &str) {
    for (rel, bytes) in file_tree(dir) {
        put(server, &format!("{prefix}/{rel}"), &bytes);
    }
}

fn order(dir: &TestDir, env: &[(String, String)], set: &str, extra: &[&str]) -> String {
    let mut args = vec!["stream", set, "--order", "--images", "decoded"];
    args.extend_from_slice(extra);
    let out = dir.run_env(&args, env);
    ok(&out);
    out.stdout
}

#[test]
fn a_build_into_s3_writes_the_bytes_of_a_build_on_disk_and_reads_back_in_the_same_order() {
    let (dir, server) = setup();
    ok(&dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]));
    let out = dir.run_env(
        &["build", "r.yaml", "--out", "s3://data/out", "--quiet"],
        &server.env(),
    );
    ok(&out);
    assert_eq!(objects(&server, "out"), file_tree(&dir.path("out")));

    let env = server.env();
    assert_eq!(
        order(&dir, &env, "s3://data/out", &[]),
        order(&dir, &env, "out", &[])
    );
    ok(&dir.run_env(&["verify", "s3://data/out"], &env));
    let audit = dir.run_env(&["audit", "s3://data/out", "--recipe", "r.yaml"], &env);
    ok(&audit);
    assert!(
        !std::fs::read_dir(dir.root()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("s3")),
        "nothing of the URL was created as a local folder"
    );
}

#[test]
fn a_build_into_azure_blob_storage_writes_the_bytes_of_a_build_on_disk_and_reads_back_in_the_same_order()
 {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let azurite = Azurite::start();
    azurite.create_container("data");
    let env = azurite.env();
    ok(&dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]));
    ok(&dir.run_env(
        &["build", "r.yaml", "--out", "az://data/out", "--quiet"],
        &env,
    ));
    // The lock blob is gone, and every other blob is the file a build on disk writes.
    assert_eq!(azurite.blobs("data", "out"), file_tree(&dir.path("out")));
    assert_eq!(
        order(&dir, &env, "az://data/out", &["--epochs", "2"]),
        order(&dir, &[], "out", &["--epochs", "2"])
    );
    ok(&dir.run_env(&["verify", "az://data/out"], &env));
    // A second build of the same prefix resumes: nothing to redo, the same blobs.
    ok(&dir.run_env(
        &["build", "r.yaml", "--out", "az://data/out", "--quiet"],
        &env,
    ));
    assert_eq!(azurite.blobs("data", "out"), file_tree(&dir.path("out")));
}

/// fake-gcs-server serves GCS's JSON API and the XML API's reads, which is what `gs://` reads use;
/// `object_store` writes through the XML API's object PUT, which it lacks
/// (fsouza/fake-gcs-server#331), so the test uploads the set and sources itself.
#[test]
fn a_set_and_recipe_sources_in_google_cloud_storage_read_as_the_same_files_on_disk() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let gcs = FakeGcs::start();
    gcs.create_bucket("data");
    let env = gcs.env();
    ok(&dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]));
    gcs.upload(&dir.path("out"), "data", "out");
    assert_eq!(gcs.objects("data", "out"), file_tree(&dir.path("out")));
    assert_eq!(
        order(&dir, &env, "gs://data/out", &["--epochs", "2"]),
        order(&dir, &[], "out", &["--epochs", "2"])
    );
    ok(&dir.run_env(&["verify", "gs://data/out"], &env));
    // Ranged reads: with images skipped, no image byte comes down.
    let skip = dir.run_env(
        &["stream", "gs://data/out", "--images", "skip", "--json"],
        &env,
    );
    ok(&skip);
    let report: serde_json::Value = serde_json::from_str(&skip.stdout).unwrap();
    let (image_bytes, token_bytes, _) = column_bytes(&dir.path("out"));
    let downloaded = report["remote"]["bytes_downloaded"].as_u64().unwrap();
    let set_bytes: u64 = file_tree(&dir.path("out"))
        .values()
        .map(|b| b.len() as u64)
        .sum();
    assert!(
        token_bytes <= downloaded && downloaded < set_bytes - image_bytes,
        "{downloaded} bytes downloaded; of the set's {set_bytes}, {token_bytes} are the other \
         columns and {image_bytes} images"
    );

    let repo = crate::util::repo();
    for (from, prefix) in DEMO_SOURCES {
        gcs.upload(&repo.join(from), "data", prefix);
    }
    dir.write("local.yaml", local_sources_recipe());
    dir.write(
        "remote.yaml",
        sources_recipe(
            "gs://data/corpus/llava/*.jsonl",
            "gs://data/corpus/wds/shapes-*.tar",
        ),
    );
    ok(&dir.run(&["build", "local.yaml", "--out", "local", "--quiet"]));
    ok(&dir.run_env(
        &["build", "remote.yaml", "--out", "remote", "--quiet"],
        &env,
    ));
    assert_same_rows(&dir, "remote", "local");
}

#[test]
fn a_killed_build_into_s3_resumes_byte_identical_and_a_second_builder_is_refused() {
    let (dir, server) = setup();
    let env = server.env();
    // Many small shards, so the kill lands between two of them.
    let args = [
        "build",
        "r.yaml",
        "--out",
        "s3://data/out",
        "--quiet",
        "--shard-bytes",
        "200000",
        "--jobs",
        "1",
    ];
    ok(&dir.run(&[&args[..2], &["--out", "local"], &args[4..]].concat()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mixtape"))
        .args(args)
        .current_dir(dir.root())
        .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let shards = |server: &S3Server| {
        server
            .list_keys("data")
            .iter()
            .filter(|(k, _)| k.ends_with(".parquet"))
            .count()
    };
    while shards(&server) < 2 && std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let keys: Vec<String> = server
        .list_keys("data")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        keys.iter().any(|k| k == "out/_mixtape/lock.json"),
        "the killed build left its lock: {keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.ends_with("manifest.json")) || shards(&server) > 2,
        "killed before it finished: {keys:?}"
    );

    // Another machine's lock: refused, naming the lock object and the fix.
    put(
        &server,
        "out/_mixtape/lock.json",
        br#"{"host": "elsewhere", "pid": 1, "started": 0}"#,
    );
    let refused = dir.run_env(&args, &env);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("s3://data/out/_mixtape/lock.json is held by host elsewhere"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("delete that object and rerun"),
        "{}",
        refused.stderr
    );

    // The killed build's own lock (this machine, its process gone) is taken over on rerun.
    put(
        &server,
        "out/_mixtape/lock.json",
        format!(
            r#"{{"host": "{}", "pid": 4000000, "started": 0}}"#,
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
        )
        .as_bytes(),
    );
    ok(&dir.run_env(&args, &env));
    assert_eq!(objects(&server, "out"), file_tree(&dir.path("local")));
}

#[test]
fn reading_through_503s_and_dropped_connections_loses_and_repeats_nothing() {
    let (dir, server) = setup();
    ok(&dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]));
    upload(&server, &dir.path("out"), "out");
    let proxy = FaultProxy::start(
        &server.addr(),
        Faults {
            status_503_every: Some(4),
            drop_every: Some(7),
            ..Faults::default()
        },
    );
    let from_disk = order(
        &dir,
        &[],
        "out",
        &["--epochs", "2", "--shuffle-window", "16"],
    );
    // Reading ahead (the default) or window by window, many requests at once or one.
    for fetching in [&[][..], &["--no-read-ahead", "--remote-requests", "1"][..]] {
        // The endpoint from --endpoint, over the environment's (the server's, without faults).
        let endpoint = proxy.endpoint();
        let mut args = vec![
            "--endpoint",
            &endpoint,
            "--epochs",
            "2",
            "--shuffle-window",
            "16",
        ];
        args.extend_from_slice(fetching);
        let injected = proxy.faults_injected();
        let faulty = order(&dir, &server.env(), "s3://data/out", &args);
        assert!(
            proxy.faults_injected() >= injected + 5,
            "{} faults",
            proxy.faults_injected() - injected
        );
        assert_eq!(faulty, from_disk, "{fetching:?}");
    }
}

#[test]
fn a_bucket_that_does_not_exist_is_named_as_such() {
    let (dir, server) = setup();
    let env = server.env();
    let build = dir.run_env(
        &[
            "build",
            "r.yaml",
            "--out",
            "s3://no-such-bucket/out",
            "--quiet",
        ],
        &env,
    );
    let read = dir.run_env(&["stream", "s3://no-such-bucket/out"], &env);
    assert!(
        read.stderr.contains("check the path") && !read.stderr.contains("permissions"),
        "{}",
        read.stderr
    );
    for out in [build, read] {
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("s3://no-such-bucket/out")
                && out.stderr.contains("no such bucket or container"),
            "{}",
            out.stderr
        );
        // The store's answer once in the message and once as its cause, not again at every
        // level of the store client's own error chain.
        assert!(
            out.stderr.matches("<Code>NoSuchBucket</Code>").count() <= 2,
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_changed_object_is_named_with_its_url_and_row_group() {
    let (dir, server) = setup();
    ok(&dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]));
    upload(&server, &dir.path("out"), "out");
    let mut shard = std::fs::read(dir.path("out/main/shard-00000.parquet")).unwrap();
    let middle = shard.len() / 3;
    shard[middle] ^= 0x40;
    put(&server, "out/main/shard-00000.parquet", &shard);
    let out = dir.run_env(&["stream", "s3://data/out"], &server.env());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("s3://data/out/main/shard-00000.parquet")
            && out.stderr.contains("row group 0"),
        "{}",
        out.stderr
    );
}

/// Bytes of the column chunks of every shard under `out` (image bytes, the others), and of their
/// leading magic and tails (footer and page indexes), from pyarrow.
fn column_bytes(out: &std::path::Path) -> (u64, u64, u64) {
    let printed = run_python("benches/objstore/column_bytes.py", &[out]);
    let mut numbers = printed
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap());
    let mut next = || numbers.next().unwrap();
    (next(), next(), next())
}

/// `stream --json` through `proxy`, returning the report.
fn stream_json(dir: &TestDir, proxy: &FaultProxy, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["stream", "s3://data/out", "--json"];
    args.extend_from_slice(extra);
    let out = dir.run_env(&args, &proxy.env());
    ok(&out);
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn skipping_images_downloads_the_token_columns_and_no_image_bytes() {
    let (dir, server) = setup();
    ok(&dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]));
    upload(&server, &dir.path("out"), "out");
    let (image_bytes, token_bytes, footer_bytes) = column_bytes(&dir.path("out"));
    assert!(
        image_bytes > 5 * token_bytes,
        "{image_bytes} vs {token_bytes}"
    );
    // With the default window, and with windows of 4 rows, far shorter than the row groups: a row
    // group is fetched once an epoch, whatever the number of windows it spans.
    for window in ["2048", "4"] {
        let proxy = FaultProxy::start(&server.addr(), Faults::default());
        stream_json(
            &dir,
            &proxy,
            &["--images", "skip", "--shuffle-window", window],
        );
        let downloaded: u64 = proxy
            .ranged_gets()
            .iter()
            .map(|(_, range)| range_len(range))
            .sum();
        // The token columns and each shard's magic and tail (its footer: a few KB, which this
        // small set's token columns do not dwarf as a real set's do), and not one image byte.
        assert!(
            downloaded as f64 <= 1.1 * token_bytes as f64 + footer_bytes as f64,
            "window {window}: {downloaded} bytes downloaded for {token_bytes} bytes of token columns and {footer_bytes} of footers"
        );
    }
}

/// The length of an HTTP `Range` header's `bytes=A-B`.
fn range_len(range: &str) -> u64 {
    let (start, end) = range
        .trim_start_matches("bytes=")
        .split_once('-')
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap();
    end + 1 - start
}

/// Bytes a cache of `limit` bytes downloads for `accesses` (object, range, size) when it evicts
/// by Belady's rule with exact knowledge of every future access (the optimum the reader's cache
/// is measured against), and when it evicts the least recently used.
fn simulate(accesses: &[(String, u64)], limit: u64) -> (u64, u64) {
    let mut next: Vec<usize> = vec![usize::MAX; accesses.len()];
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, (key, _)) in accesses.iter().enumerate().rev() {
        next[i] = seen.get(key.as_str()).copied().unwrap_or(usize::MAX);
        seen.insert(key, i);
    }
    // Belady with bypass: keep the ranges needed soonest.
    let mut cached: HashMap<&str, (usize, u64)> = HashMap::new();
    let (mut used, mut belady) = (0u64, 0u64);
    for (i, (key, size)) in accesses.iter().enumerate() {
        if let Some(entry) = cached.get_mut(key.as_str()) {
            entry.0 = next[i];
            continue;
        }
        belady += size;
        if next[i] == usize::MAX || *size > limit {
            continue;
        }
        let mut victims: Vec<(&str, usize, u64)> =
            cached.iter().map(|(k, (n, s))| (*k, *n, *s)).collect();
        victims.sort_by_key(|v| std::cmp::Reverse(v.1));
        let mut freed = 0;
        let mut evict = Vec::new();
        for (k, n, s) in victims {
            if used - freed + size <= limit || n <= next[i] {
                break;
            }
            freed += s;
            evict.push(k);
        }
        if used - freed + size <= limit {
            for k in evict {
                cached.remove(k);
            }
            used = used - freed + size;
            cached.insert(key, (next[i], *size));
        }
    }
    // LRU, admitting everything.
    let mut lru: VecDeque<(&str, u64)> = VecDeque::new();
    let (mut used, mut lru_bytes) = (0u64, 0u64);
    for (key, size) in accesses {
        if let Some(at) = lru.iter().position(|(k, _)| k == key) {
            let entry = lru.remove(at).unwrap();
            lru.push_back(entry);
            continue;
        }
        lru_bytes += size;
        while used + size > limit {
            let Some((_, s)) = lru.pop_front() else { break };
            used -= s;
        }
        if *size <= limit {
            lru.push_back((key, *size));
            used += size;
        }
    }
    (belady, lru_bytes)
}

/// Two stages of a few hundred short rows each, small images: many shards and windows per epoch.
fn many_rows_recipe() -> String {
    format!(
        r#"version: 1
name: many-rows
seed: 11
tokenizer: {{path: {tok}}}
sources:
  prose: {{format: synthetic, kind: long-text, count: 400, category: long-text}}
  caps: {{format: synthetic, kind: shapes-caption, count: 2000, category: caption}}
stages:
  - name: first
    seq_len: 512
    budget: {{tokens: 60000}}
    mix: {{long-text: 0.5, caption: 0.5}}
    image: {{max_pixels: 200704}}
  - name: second
    seq_len: 512
    budget: {{tokens: 60000}}
    mix: {{long-text: 0.8, caption: 0.2}}
    image: {{max_pixels: 200704}}
"#,
        tok = crate::util::tokenizer()
    )
}

#[test]
fn a_chunk_cache_of_a_quarter_of_the_set_downloads_near_the_optimum_over_three_epochs() {
    let (dir, server) = setup();
    // Many shards and windows, so the order reuses chunks across many windows.
    dir.write("many.yaml", many_rows_recipe());
    ok(&dir.run(&[
        "build",
        "many.yaml",
        "--out",
        "out",
        "--quiet",
        "--shard-bytes",
        "150000",
    ]));
    upload(&server, &dir.path("out"), "out");
    let read = [
        "--images",
        "skip",
        "--epochs",
        "3",
        "--shuffle-window",
        "8",
        "--decode-threads",
        "1",
    ];

    // Without a cache every access is a download: the trace of accesses, in order.
    let uncached = FaultProxy::start(&server.addr(), Faults::default());
    stream_json(&dir, &uncached, &read);
    let accesses: Vec<(String, u64)> = uncached
        .ranged_gets()
        .into_iter()
        .map(|(target, range)| {
            let len = range_len(&range);
            (format!("{target} {range}"), len)
        })
        .collect();
    let mut unique: HashMap<&str, u64> = HashMap::new();
    for (key, size) in &accesses {
        unique.insert(key, *size);
    }
    let set_bytes: u64 = unique.values().sum();
    let limit = set_bytes / 4;
    let (optimum, lru) = simulate(&accesses, limit);

    let cache = dir.path("chunks");
    let limit_arg = limit.to_string();
    let cached = FaultProxy::start(&server.addr(), Faults::default());
    let mut args = read.to_vec();
    args.extend([
        "--chunk-cache",
        cache.to_str().unwrap(),
        "--chunk-cache-limit",
        &limit_arg,
    ]);
    let report = stream_json(&dir, &cached, &args);
    let downloaded = report["remote"]["bytes_downloaded"].as_u64().unwrap();
    let total: u64 = accesses.iter().map(|(_, s)| s).sum();
    eprintln!(
        "set {set_bytes} B, limit {limit} B, 3 epochs: uncached {total} B, LRU {lru} B, optimum {optimum} B, chunk cache {downloaded} B"
    );
    // This set is small (a few windows per epoch, footers a large share of the bytes), so the
    // reader's window-grained view of the future costs more here than on a real set: on the demo
    // recipe with every count x4 the cache downloads 1.015x the optimum (issue notes).
    assert!(
        downloaded as f64 <= 1.10 * optimum as f64 && downloaded < lru,
        "the chunk cache downloaded {downloaded} bytes, the optimum {optimum} (LRU {lru})"
    );
    let held: u64 = crate::util::walk(&cache)
        .iter()
        .map(|file| std::fs::metadata(file).unwrap().len())
        .sum();
    assert!(
        held <= limit,
        "the cache holds {held} bytes, over its limit {limit}"
    );
}

#[test]
fn split_build_tasks_into_s3_and_their_finish_write_the_bytes_of_a_one_machine_build() {
    let (dir, server) = setup();
    let env = server.env();
    ok(&dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "whole",
        "--quiet",
        "--shard-bytes",
        "200000",
    ]));
    // The length cache in the bucket too: machines that share no file system share the measuring.
    let lengths = "s3://data/lengths";
    for task in ["0", "1"] {
        let args = [
            "index",
            "r.yaml",
            "--task",
            task,
            "--tasks",
            "2",
            "--cache-dir",
            lengths,
        ];
        ok(&dir.run_env(&args, &env));
    }
    let index = dir.run_env(&["index", "r.yaml", "--json", "--cache-dir", lengths], &env);
    ok(&index);
    let parts: serde_json::Value = serde_json::from_str(&index.stdout).unwrap();
    let parts = parts["parts"].as_array().unwrap();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p["cached"] == true),
        "{parts:?}"
    );
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "r.yaml",
            "--out",
            "s3://data/split",
            "--quiet",
            "--shard-bytes",
            "200000",
            "--cache-dir",
            lengths,
        ];
        args.extend_from_slice(extra);
        ok(&dir.run_env(&args, &env));
    };
    // Both tasks at once, as a job array runs them: each holds a lock of its own.
    std::thread::scope(|scope| {
        scope.spawn(|| build(&["--task", "0", "--tasks", "2"]));
        scope.spawn(|| build(&["--task", "1", "--tasks", "2"]));
    });
    build(&["--finish"]);
    assert_eq!(objects(&server, "split"), file_tree(&dir.path("whole")));
}

/// The demo's LLaVA-style conversations (their images by relative path) and WebDataset tars,
/// uploaded under `corpus/` as `put` writes them.
const DEMO_SOURCES: [(&str, &str); 3] = [
    ("recipes/data/llava", "corpus/llava"),
    ("recipes/data/images", "corpus/images"),
    ("recipes/data/wds", "corpus/wds"),
];

/// A one-stage recipe over conversations at `llava` and WebDataset tars at `wds` (globs).
fn sources_recipe(llava: &str, wds: &str) -> String {
    format!(
        r#"version: 1
name: remote-sources
seed: 3
tokenizer: {{path: {tok}}}
sources:
  llava: {{format: conversation, path: {llava}, category: vqa}}
  wds: {{format: webdataset, path: {wds}, schema: caption, category: caption}}
stages:
  - name: only
    seq_len: 4096
    budget: {{samples: 24}}
    mix: {{vqa: 0.5, caption: 0.5}}
"#,
        tok = crate::util::tokenizer()
    )
}

/// [`sources_recipe`] over the demo's files on disk.
fn local_sources_recipe() -> String {
    let repo = crate::util::repo();
    sources_recipe(
        &repo
            .join("recipes/data/llava/*.jsonl")
            .display()
            .to_string(),
        &repo
            .join("recipes/data/wds/shapes-*.tar")
            .display()
            .to_string(),
    )
}

/// The builds of [`sources_recipe`] in `dir/a` and `dir/b` hold the same rows; their files differ
/// only in the recipe fingerprint in their footers (the recipes name different paths).
fn assert_same_rows(dir: &TestDir, a: &str, b: &str) {
    let script = dir.write(
        "same_rows.py",
        "import sys, pyarrow.parquet as pq\n\
         a, b = (pq.read_table(p) for p in sys.argv[1:])\n\
         print(a.num_rows, a.equals(b))\n",
    );
    let printed = run_python(
        script.to_str().unwrap(),
        &[
            &dir.path(&format!("{a}/only/shard-00000.parquet")),
            &dir.path(&format!("{b}/only/shard-00000.parquet")),
        ],
    );
    assert!(printed.trim().ends_with("True"), "{printed}");
}

#[test]
fn a_recipe_whose_sources_are_objects_builds_what_the_same_files_on_disk_build() {
    let (dir, server) = setup();
    let repo = crate::util::repo();
    for (from, prefix) in DEMO_SOURCES {
        upload(&server, &repo.join(from), prefix);
    }
    let recipe = sources_recipe;
    dir.write("local.yaml", local_sources_recipe());
    dir.write(
        "remote.yaml",
        recipe(
            "s3://data/corpus/llava/*.jsonl",
            "s3://data/corpus/wds/shapes-*.tar",
        ),
    );
    let env = server.env();
    ok(&dir.run_env(&["build", "local.yaml", "--out", "local", "--quiet"], &env));
    ok(&dir.run_env(
        &["build", "remote.yaml", "--out", "remote", "--quiet"],
        &env,
    ));
    assert_same_rows(&dir, "remote", "local");
    let missing = dir.run_env(&["check", "remote.yaml"], &env);
    ok(&missing);
    dir.write(
        "gone.yaml",
        recipe(
            "s3://data/corpus/nothing-*.jsonl",
            "s3://data/corpus/wds/shapes-*.tar",
        ),
    );
    let gone = dir.run_env(&["check", "gone.yaml"], &env);
    assert_eq!(gone.code, 1, "{}", gone.stderr);
    assert!(
        gone.stderr
            .contains("no objects match `s3://data/corpus/nothing-*.jsonl`"),
        "{}",
        gone.stderr
    );
}
