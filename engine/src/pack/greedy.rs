//! Greedy concatenation: the baseline. Items go into the open pack in arrival order; when the next
//! one does not fit (tokens or image tokens), the open pack is emitted and a new one started. Holds
//! one pack's worth of items, emits at most one pack per push, and keeps the stream order: packs come
//! out in arrival order and hold consecutive runs of the stream.

use super::{Pack, PackItem, fits};

#[derive(Debug)]
pub(super) struct Greedy {
    seq_len: u32,
    image_cap: u32,
    open: Pack,
}

impl Greedy {
    pub(super) fn new(seq_len: u32, image_cap: u32) -> Self {
        Self {
            seq_len,
            image_cap,
            open: Pack::default(),
        }
    }

    pub(super) fn pending(&self) -> usize {
        self.open.items.len()
    }

    /// `item` must fit in an empty pack (the caller checked).
    pub(super) fn push(&mut self, item: PackItem, out: &mut Vec<Pack>) {
        let room = fits(self.open.tokens, item.tokens, self.seq_len)
            && fits(self.open.image_tokens, item.image_tokens, self.image_cap);
        if !room && !self.open.items.is_empty() {
            out.push(self.take_open());
        }
        self.open.items.push(item.id);
        // Cannot overflow: the item fits the (possibly fresh) pack, whose sums stay under the limits.
        self.open.tokens = self.open.tokens.saturating_add(item.tokens);
        self.open.image_tokens = self.open.image_tokens.saturating_add(item.image_tokens);
    }

    pub(super) fn finish(mut self, out: &mut Vec<Pack>) {
        if !self.open.items.is_empty() {
            out.push(self.take_open());
        }
    }

    /// The open pack, laid out by ascending id like every pack. Ids are stream positions, so this
    /// is the arrival order and the sort is a linear pass over an already sorted run.
    fn take_open(&mut self) -> Pack {
        let mut pack = std::mem::take(&mut self.open);
        pack.items.sort_unstable();
        pack
    }
}

#[cfg(test)]
mod tests {
    use crate::pack::{Pack, PackAlgorithm, PackItem, PackerConfig, pack_all};

    fn greedy(seq_len: u32) -> PackerConfig {
        PackerConfig::new(seq_len).with_algorithm(PackAlgorithm::Greedy)
    }

    fn pack(items: &[u64], tokens: u32, image_tokens: u32) -> Pack {
        Pack {
            items: items.to_vec(),
            tokens,
            image_tokens,
        }
    }

    #[test]
    fn concatenates_in_arrival_order_and_starts_a_new_pack_when_the_next_item_does_not_fit() {
        let items = [6, 3, 1, 5, 5, 2]
            .iter()
            .enumerate()
            .map(|(i, &t)| PackItem::text(i as u64, t));
        let packs = pack_all(greedy(10), items).unwrap();
        assert_eq!(
            packs,
            vec![
                pack(&[0, 1, 2], 10, 0),
                pack(&[3, 4], 10, 0),
                pack(&[5], 2, 0)
            ]
        );
    }

    #[test]
    fn never_looks_back_at_an_earlier_pack() {
        // Item 2 would fit after item 0, but greedy only ever fills the open pack.
        let items = [
            PackItem::text(0, 7),
            PackItem::text(1, 6),
            PackItem::text(2, 3),
        ];
        let packs = pack_all(greedy(10), items).unwrap();
        assert_eq!(packs, vec![pack(&[0], 7, 0), pack(&[1, 2], 9, 0)]);
    }

    #[test]
    fn starts_a_new_pack_when_the_image_cap_would_be_exceeded() {
        let config = greedy(100).with_max_image_tokens(Some(10));
        let items = [
            PackItem::new(0, 20, 6),
            PackItem::new(1, 20, 6),
            PackItem::text(2, 20),
        ];
        let packs = pack_all(config, items).unwrap();
        assert_eq!(packs, vec![pack(&[0], 20, 6), pack(&[1, 2], 40, 6)]);
    }
}
