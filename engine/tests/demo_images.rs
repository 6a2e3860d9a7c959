//! The source readers and the decoder agree on every demo image: each decodes to exactly the
//! (height, width) its reader probed from the header (EXIF rotation included), whether it is a file
//! (caption sources) or bytes inside Parquet and WebDataset records, and `process` resizes it to the
//! grid planned from that probed size. The codecs themselves are tested in `image/tests/codec.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mixtape_engine::image::{
    DEFAULT_JPEG_QUALITY, ImageEncoding, ResizePolicy, decode, process, smart_resize,
};
use mixtape_engine::recipe::DEFAULT_MAX_RECORD_BYTES;
use mixtape_engine::sample::ImageSource;
use mixtape_engine::source::{FieldMap, RecordSchema, SourceFormat, SourceSpec, read_source};

fn demo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/data")
}

fn spec(format: SourceFormat, files: Vec<PathBuf>) -> SourceSpec {
    SourceSpec {
        name: "demo".into(),
        format,
        category: "demo".into(),
        weight: None,
        files,
        schema: None,
        fields: FieldMap::default(),
        image_root: None,
        synthetic: None,
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        chat: Default::default(),
        long_text: None,
    }
}

/// Every image the source readers yield for `spec`, with the size they probed from its header.
fn probed(spec: &SourceSpec) -> Vec<(ImageSource, (u32, u32))> {
    read_source(spec)
        .unwrap()
        .flat_map(|r| r.unwrap().sample.unwrap().images)
        .map(|img| (img.source, img.size.expect("readers probe every size")))
        .collect()
}

/// The 24 demo images, by file name, with their probed (height, width).
fn demo_images() -> BTreeMap<String, (Vec<u8>, (u32, u32))> {
    let root = demo_root().join("caption");
    let images = probed(&spec(
        SourceFormat::Caption,
        vec![root.join("part-0.jsonl"), root.join("part-1.jsonl")],
    ));
    let map: BTreeMap<_, _> = images
        .into_iter()
        .map(|(source, size)| {
            let ImageSource::File(path) = source else {
                panic!("caption images are files")
            };
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, (std::fs::read(&path).unwrap(), size))
        })
        .collect();
    assert_eq!(map.len(), 24, "one caption per demo image");
    map
}

#[test]
fn every_demo_image_decodes_to_the_size_the_readers_probed() {
    for (name, (bytes, size)) in demo_images() {
        let img = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.size(), size, "{name}");
        assert_eq!(
            img.pixels.len(),
            3 * size.0 as usize * size.1 as usize,
            "{name}"
        );
    }
}

#[test]
fn images_held_as_bytes_in_parquet_and_webdataset_decode_to_their_probed_sizes() {
    let root = demo_root();
    let mut parquet = spec(
        SourceFormat::Parquet,
        vec![root.join("parquet/docs-mini.parquet")],
    );
    parquet.schema = Some(RecordSchema::Conversation);
    let wds = spec(
        SourceFormat::WebDataset,
        vec![
            root.join("wds/shapes-000000.tar"),
            root.join("wds/shapes-000001.tar"),
        ],
    );
    let mut count = 0;
    for (source, size) in probed(&parquet).into_iter().chain(probed(&wds)) {
        let ImageSource::Bytes(bytes) = source else {
            panic!("these sources hold bytes")
        };
        assert_eq!(decode(&bytes).unwrap().size(), size);
        count += 1;
    }
    assert_eq!(count, 16 + 20);
}

#[test]
fn process_resizes_every_demo_image_to_the_planned_grid() {
    let policy = ResizePolicy::default();
    for (name, (bytes, probed)) in demo_images() {
        let out = process(&bytes, &policy, ImageEncoding::Jpeg, DEFAULT_JPEG_QUALITY).unwrap();
        let planned = smart_resize(probed.0, probed.1, &policy).unwrap();
        assert_eq!((out.height, out.width), planned, "{name}");
        assert_eq!((out.source_height, out.source_width), probed, "{name}");
        assert_eq!(decode(&out.bytes).unwrap().size(), planned, "{name}");
        assert_eq!(
            out,
            process(&bytes, &policy, ImageEncoding::Jpeg, DEFAULT_JPEG_QUALITY).unwrap(),
            "{name} is deterministic"
        );
    }
}
