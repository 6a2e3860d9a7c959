//! The synthetic reader: records `0..count` of a built-in generator.
//!
//! The generator (`crate::synthetic::generate`) is pure in `(kind, seed, index)`, so this reader is a
//! counter; it exists so synthetic sources flow through the same [`Record`] stream as file sources
//! and every later stage treats them alike.

use super::{Record, RecordLocation, RecordUnit, Records, SyntheticSpec};

pub(crate) fn read(settings: &SyntheticSpec) -> Records {
    let SyntheticSpec { kind, count, seed } = *settings;
    Box::new((0..count).map(move |index| {
        Ok(Record {
            location: RecordLocation {
                file_index: 0,
                file: None,
                record: index,
                member: None,
                unit: RecordUnit::Synthetic,
            },
            sample: Ok(crate::synthetic::generate(kind, seed, index)),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::spec;
    use super::super::{SourceFormat, read_source, sample_key};
    use super::*;
    use crate::synthetic::SyntheticKind;

    #[test]
    fn yields_count_records_numbered_from_zero_matching_the_generator() {
        let mut s = spec(SourceFormat::Synthetic, vec![]);
        s.synthetic = Some(SyntheticSpec {
            kind: SyntheticKind::ShapesCaption,
            count: 5,
            seed: 3,
        });
        let records: Vec<Record> = read_source(&s).unwrap().map(Result::unwrap).collect();
        assert_eq!(records.len(), 5);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.location.record, i as u64);
            assert_eq!(
                r.sample.as_ref().unwrap(),
                &crate::synthetic::generate(SyntheticKind::ShapesCaption, 3, i as u64)
            );
        }
        assert_eq!(records[4].location.to_string(), "synthetic #4");
        assert_eq!(sample_key(&s, &records[4].location), "synthetic #4");
    }
}
