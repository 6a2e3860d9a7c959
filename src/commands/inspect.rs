//! `mixtape inspect`: show packed rows of a shard as a person reads them.
//!
//! For each selected row: every packed sample with its token range, source, category, key and loss
//! tokens, then its tokens decoded as text. The tokenizer is the one the build recorded in its
//! `build.json` (or `--tokenizer` / `--recipe`), and it must be the same file: its blake3 is checked
//! against the record, since decoding with another tokenizer prints plausible but wrong text. Token
//! ids are shown when no tokenizer is known (a stage folder copied without its build record). Runs of
//! `<|image_pad|>` are collapsed to `<|image_pad|>x256` followed by the image's size, since hundreds
//! of identical pads hide the text around them; the spans come from the shard's image records, so
//! ids alone collapse too. Loss tokens are marked `⟦…⟧`, or green when stdout is a terminal and
//! `NO_COLOR` is not set.
//! `--images-out` writes each image of the selected rows as its own file.
//!
//! Only the row groups holding the selected rows are decoded, so memory stays at one row group
//! whatever the shard's size.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use mixtape_engine::index::FileDigest;
use mixtape_engine::template::Encoder;
use mixtape_shards::{
    BuildRecord, BuildRecordError, ImageEncoding, Manifest, PackedRow, RecordedTokenizer,
    ShardFile, ShardImage, ShardMeta, StageLayout,
};
use serde::Serialize;

/// What to show, as parsed from the command line.
#[derive(Debug)]
pub struct InspectArgs {
    pub path: PathBuf,
    pub shard: Option<u32>,
    pub row: Option<u64>,
    pub rows: Option<String>,
    pub tokenizer: Option<PathBuf>,
    pub recipe: Option<PathBuf>,
    pub images_out: Option<PathBuf>,
    pub json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let InspectArgs {
        path,
        shard,
        row,
        rows,
        tokenizer,
        recipe,
        images_out,
        json,
    } = args;
    let shard_path = shard_path(&path, shard)?;
    let file = ShardFile::open(&shard_path)?;
    let range = row_range(row, rows.as_deref(), file.rows(), &shard_path)?;
    let recorded = recorded_tokenizer(&shard_path, file.meta());
    let encoder = match (tokenizer, recipe, recorded) {
        (Some(path), _, recorded) => Some(load_tokenizer(&path, recorded.ok().as_ref())?),
        (None, Some(recipe), recorded) => Some(load_tokenizer(
            &recipe_tokenizer(&recipe)?,
            recorded.ok().as_ref(),
        )?),
        (None, None, Ok(recorded)) if recorded.path.is_file() => {
            Some(load_tokenizer(&recorded.path, Some(&recorded))?)
        }
        (None, None, Ok(recorded)) => {
            eprintln!(
                "note: showing token ids: the build's tokenizer {} is gone; pass --tokenizer FILE (blake3 {}) to decode them",
                recorded.path.display(),
                recorded.blake3
            );
            None
        }
        (None, None, Err(why)) => {
            eprintln!("note: showing token ids: {why}; pass --tokenizer FILE to decode them");
            None
        }
    };
    if let Some(dir) = &images_out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let colour = crate::failure::colour_allowed(std::env::var_os("NO_COLOR").as_deref());
    let style = if !json && colour && std::io::stdout().is_terminal() {
        Style::Colour
    } else {
        Style::Markers
    };
    let mut shown = Vec::new();
    let mut first = 0u64;
    for group in 0..file.row_groups() {
        let len = file.row_group_rows(group).unwrap_or(0);
        let group_rows = first..first + len;
        first += len;
        if group_rows.end <= range.start || group_rows.start >= range.end {
            continue;
        }
        for (offset, packed) in file.read_row_group(group)?.into_iter().enumerate() {
            let index = group_rows.start + offset as u64;
            if !range.contains(&index) {
                continue;
            }
            let files = match &images_out {
                Some(dir) => write_images(dir, index, &packed.images)?,
                None => Vec::new(),
            };
            shown.push(describe(index, &packed, encoder.as_ref(), files));
        }
    }
    let meta = file.meta();
    if json {
        let doc = Doc {
            shard: &shard_path,
            stage: &meta.stage,
            seq_len: meta.seq_len,
            rows: &shown,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let mut out = String::new();
        let marks = if style == Style::Markers {
            "; loss tokens are marked ⟦…⟧"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{} (stage {}, seq_len {}, {} rows){marks}",
            shard_path.display(),
            meta.stage,
            meta.seq_len,
            file.rows()
        );
        for row in &shown {
            render(&mut out, row, style);
        }
        print!("{out}");
    }
    if let Some(dir) = images_out {
        let n: usize = shown.iter().map(|r| r.images.len()).sum();
        eprintln!(
            "wrote {n} image{} to {}",
            if n == 1 { "" } else { "s" },
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The shard file `path` names: itself, or shard `shard` (default 0) of a stage folder.
fn shard_path(path: &Path, shard: Option<u32>) -> anyhow::Result<PathBuf> {
    if !mixtape_store::is_dir(path) {
        if shard.is_some() {
            bail!(
                "--shard picks a shard of a stage folder, but {} is a file: drop --shard",
                path.display()
            );
        }
        return Ok(path.to_path_buf());
    }
    let index = shard.unwrap_or(0);
    let stage = StageLayout::of_dir(path);
    let manifest_path = stage.manifest();
    if !mixtape_store::is_file(&manifest_path) {
        return Ok(stage.shard(index));
    }
    let manifest = Manifest::read(&manifest_path)?;
    match manifest.shards.iter().find(|s| s.index == index) {
        Some(info) => Ok(stage.dir().join(&info.file)),
        None => {
            let last = manifest.shards.iter().map(|s| s.index).max();
            match last {
                Some(last) => bail!(
                    "{} lists no shard with index {index}: pass --shard K with K from 0 to {last}",
                    manifest_path.display(),
                ),
                None => bail!("{} lists no shards", manifest_path.display()),
            }
        }
    }
}

/// The rows selected by `--row N` or `--rows A..B` (default: row 0), checked against the shard.
fn row_range(
    row: Option<u64>,
    rows: Option<&str>,
    total: u64,
    shard: &Path,
) -> anyhow::Result<Range<u64>> {
    let range = match (row, rows) {
        (Some(n), _) => n..n.saturating_add(1),
        (None, Some(text)) => {
            let parsed = text
                .split_once("..")
                .and_then(|(a, b)| Some(a.trim().parse().ok()?..b.trim().parse().ok()?));
            match parsed {
                Some(r) if r.start < r.end => r,
                _ => bail!(
                    "--rows {text:?} is not a range A..B with A < B (B excluded), e.g. --rows 0..4"
                ),
            }
        }
        (None, None) => 0..1,
    };
    if range.end > total {
        bail!(
            "{} has {total} rows (0..{total}); rows {}..{} are past its end",
            shard.display(),
            range.start,
            range.end
        );
    }
    Ok(range)
}

/// The tokenizer the build of `shard` recorded, or why there is none to use: the build record
/// sits above the stage folder, and must be this shard's build (the same recipe fingerprint).
fn recorded_tokenizer(shard: &Path, meta: &ShardMeta) -> Result<RecordedTokenizer, String> {
    // Absolute, so that a shard named from inside its stage folder still finds the build above it.
    let absolute = shard.canonicalize().unwrap_or_else(|_| shard.to_path_buf());
    let stage_dir = absolute
        .parent()
        .ok_or_else(|| format!("{} is not inside a build output", shard.display()))?;
    let record_path = StageLayout::of_dir(stage_dir).build().build_record();
    let record = match BuildRecord::read(&record_path) {
        Ok(record) => record,
        Err(BuildRecordError::Missing { .. }) => {
            return Err(format!(
                "no {} names the tokenizer of {}",
                record_path.display(),
                shard.display()
            ));
        }
        Err(err) => return Err(err.to_string()),
    };
    if record.fingerprint != meta.recipe_fingerprint {
        return Err(format!(
            "{} is another build's record (fingerprint {}, the shard's is {})",
            record_path.display(),
            record.fingerprint,
            meta.recipe_fingerprint
        ));
    }
    record.tokenizer.ok_or_else(|| {
        format!(
            "{} (format_version {}) records no tokenizer",
            record_path.display(),
            record.format_version
        )
    })
}

/// Loads a tokenizer, refusing a file whose content is not the one the build recorded.
fn load_tokenizer(path: &Path, recorded: Option<&RecordedTokenizer>) -> anyhow::Result<Encoder> {
    if let Some(recorded) = recorded {
        let digest = FileDigest::of(path, Path::new(""))
            .with_context(|| format!("cannot read the tokenizer {}", path.display()))?;
        if digest.blake3 != recorded.blake3 {
            bail!(
                "{} is not the tokenizer these shards were built with: its blake3 is {}, the build recorded {} (from {}); decoding with it would print wrong text: pass --tokenizer FILE with the build's tokenizer",
                path.display(),
                digest.blake3,
                recorded.blake3,
                recorded.path.display()
            );
        }
    }
    Encoder::from_file(path)
        .with_context(|| "pass the tokenizer.json the shards were built with (--tokenizer FILE)")
}

/// The tokenizer a recipe names (its static checks must pass; sources are not read).
fn recipe_tokenizer(recipe: &Path) -> anyhow::Result<PathBuf> {
    let loaded = mixtape_engine::recipe::load(recipe);
    match loaded.recipe {
        Some(r) => Ok(r.tokenizer),
        None => {
            let text: String = loaded
                .diagnostics
                .sorted()
                .iter()
                .map(|d| d.render(&loaded.sources))
                .collect();
            bail!(
                "{text}cannot read the tokenizer of {}: fix the recipe, or pass --tokenizer FILE",
                recipe.display()
            )
        }
    }
}

/// One row, ready to print or serialize.
#[derive(Debug, Serialize)]
struct Row {
    row: u64,
    tokens: usize,
    loss_tokens: usize,
    samples: Vec<Sample>,
    images: Vec<Image>,
}

#[derive(Debug, Serialize)]
struct Sample {
    index: usize,
    start: usize,
    end: usize,
    source: String,
    category: String,
    key: String,
    loss_tokens: u32,
    segments: Vec<Segment>,
}

/// A run of tokens with the same loss flag, or one image's placeholder run.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Segment {
    Text {
        loss: bool,
        text: String,
    },
    Ids {
        loss: bool,
        ids: Vec<i32>,
    },
    Image {
        image: usize,
        pad: String,
        pad_tokens: u32,
    },
}

#[derive(Debug, Serialize)]
struct Image {
    index: usize,
    sample: u32,
    encoding: &'static str,
    height: u32,
    width: u32,
    source_height: u32,
    source_width: u32,
    grid: [u32; 3],
    token_offset: u32,
    num_tokens: u32,
    bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Doc<'a> {
    shard: &'a Path,
    stage: &'a str,
    seq_len: u32,
    rows: &'a [Row],
}

fn describe(index: u64, row: &PackedRow, encoder: Option<&Encoder>, files: Vec<PathBuf>) -> Row {
    let mut files = files.into_iter();
    let images: Vec<Image> = row
        .images
        .iter()
        .enumerate()
        .map(|(i, im)| Image {
            index: i,
            sample: im.sample,
            encoding: im.encoding.as_str(),
            height: im.height,
            width: im.width,
            source_height: im.source_height,
            source_width: im.source_width,
            grid: [im.grid_t, im.grid_h, im.grid_w],
            token_offset: im.token_offset,
            num_tokens: im.num_tokens,
            bytes: im.bytes.len(),
            file: files.next(),
        })
        .collect();
    let pad = |i: &ShardImage| match encoder {
        Some(e) => e
            .tokenizer()
            .id_to_token(e.special().image_pad)
            .unwrap_or_else(|| "<|image_pad|>".into()),
        None => row
            .input_ids
            .get(i.token_offset as usize)
            .map_or_else(String::new, i32::to_string),
    };
    let mut samples = Vec::new();
    for (n, ((start, end), meta)) in row.sample_spans().zip(&row.samples).enumerate() {
        let (start, end) = (start as usize, end as usize);
        let mut segments = Vec::new();
        let mut at = start;
        while at < end {
            if let Some((i, im)) = row
                .images
                .iter()
                .enumerate()
                .find(|(_, im)| im.token_offset as usize == at)
            {
                segments.push(Segment::Image {
                    image: i,
                    pad: pad(im),
                    pad_tokens: im.num_tokens,
                });
                at += (im.num_tokens as usize).max(1);
                continue;
            }
            // A run of one loss flag, up to the next image or the sample's end.
            let loss = row.loss_mask[at] == 1;
            let next_image = row
                .images
                .iter()
                .map(|im| im.token_offset as usize)
                .filter(|&o| o > at && o < end)
                .min()
                .unwrap_or(end);
            let run_end = (at..next_image)
                .find(|&t| (row.loss_mask[t] == 1) != loss)
                .unwrap_or(next_image);
            segments.push(text_segment(&row.input_ids[at..run_end], loss, encoder));
            at = run_end;
        }
        samples.push(Sample {
            index: n,
            start,
            end,
            source: meta.source.clone(),
            category: meta.category.clone(),
            key: meta.key.clone(),
            loss_tokens: meta.loss_tokens,
            segments,
        });
    }
    let loss_tokens = row.loss_mask.iter().filter(|&&m| m == 1).count();
    Row {
        row: index,
        tokens: row.input_ids.len(),
        loss_tokens,
        samples,
        images,
    }
}

/// Decoded text when a tokenizer is given and every id is one of its ids, else the ids.
fn text_segment(ids: &[i32], loss: bool, encoder: Option<&Encoder>) -> Segment {
    let decoded = encoder.and_then(|e| {
        let ids: Vec<u32> = ids
            .iter()
            .map(|&id| u32::try_from(id).ok())
            .collect::<Option<_>>()?;
        e.tokenizer().decode(&ids, false).ok()
    });
    match decoded {
        Some(text) => Segment::Text { loss, text },
        None => Segment::Ids {
            loss,
            ids: ids.to_vec(),
        },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Colour,
    Markers,
}

fn render(out: &mut String, row: &Row, style: Style) {
    let _ = writeln!(
        out,
        "\nrow {}: {} tokens, {} loss tokens, {} samples, {} images",
        row.row,
        row.tokens,
        row.loss_tokens,
        row.samples.len(),
        row.images.len()
    );
    for s in &row.samples {
        let _ = writeln!(
            out,
            "-- sample {} [{}, {}) source {} category {} key {} ({} loss tokens)",
            s.index, s.start, s.end, s.source, s.category, s.key, s.loss_tokens
        );
        for segment in &s.segments {
            match segment {
                Segment::Text { loss, text } => mark(out, *loss, text, style),
                Segment::Ids { loss, ids } => {
                    let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
                    mark(out, *loss, &format!("[{}]", ids.join(" ")), style);
                }
                Segment::Image {
                    image,
                    pad,
                    pad_tokens,
                } => {
                    let im = &row.images[*image];
                    let _ = write!(
                        out,
                        "{pad}x{pad_tokens} [image {image}: {}x{} (WxH) {}, source {}x{}]",
                        im.width, im.height, im.encoding, im.source_width, im.source_height
                    );
                }
            }
        }
        out.push('\n');
    }
    for im in row.images.iter().filter(|im| im.file.is_some()) {
        let _ = writeln!(
            out,
            "image {} -> {}",
            im.index,
            im.file.as_deref().unwrap_or(Path::new("")).display()
        );
    }
}

fn mark(out: &mut String, loss: bool, text: &str, style: Style) {
    match (loss, style) {
        (false, _) => out.push_str(text),
        (true, Style::Markers) => {
            let _ = write!(out, "⟦{text}⟧");
        }
        (true, Style::Colour) => {
            let _ = write!(out, "\x1b[32m{text}\x1b[0m");
        }
    }
}

/// Writes the images of row `row` as `row{row}-img{i}.{ext}`, returning their paths.
fn write_images(dir: &Path, row: u64, images: &[ShardImage]) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let path = dir.join(format!("row{row}-img{i}.{}", extension(image)));
        std::fs::write(&path, &image.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

/// The file extension of an image's bytes: from its encoding, or sniffed for source bytes.
fn extension(image: &ShardImage) -> &'static str {
    match image.encoding {
        ImageEncoding::Jpeg => "jpg",
        ImageEncoding::Png => "png",
        _ => {
            let b = image.bytes.as_slice();
            if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
                "jpg"
            } else if b.starts_with(b"\x89PNG") {
                "png"
            } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
                "webp"
            } else if b.starts_with(b"GIF8") {
                "gif"
            } else {
                "bin"
            }
        }
    }
}
