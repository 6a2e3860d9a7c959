//! Long-text documents: the text-only part of a demo mix.
//!
//! What matters for mixtape is the length distribution, not the prose: documents run from 150 to 5,000
//! words, spread roughly evenly over octaves (150-300, 300-600, ... 2,400-5,000), so token counts differ
//! by more than 30x across samples. That is exactly the situation where weighting by sample count
//! instead of by tokens goes wrong, which the demo recipes need to show. Sentences come from templates
//! with slots filled from fixed word lists, around one made-up place name per document, so the text is
//! varied enough to tokenize like real prose without any corpus on disk.

use std::fmt::Write as _;

use super::rng::SplitMix64;
use super::words::{
    ADJECTIVES, ADVERBS, FIRST_NAMES, NOUNS, PLACE_KINDS, UNITS, VERBS_PAST, article, capitalise,
    proper_name,
};

/// Shortest document, in words.
pub const MIN_WORDS: usize = 150;
/// Longest document, in words (a document stops at the first sentence end at or past its target,
/// which is at most this).
pub const MAX_WORDS: usize = 5000;

/// The word count a document aims for: an octave `150 * 2^k` (k in 0..=5), then uniform inside it.
fn target_words(rng: &mut SplitMix64) -> usize {
    let octave = rng.below(6) as u32;
    let lo = MIN_WORDS << octave;
    let hi = (lo * 2).min(MAX_WORDS);
    (lo + rng.below((hi - lo) as u64) as usize).min(MAX_WORDS)
}

struct Writer<'a> {
    rng: &'a mut SplitMix64,
    place: String,
    people: Vec<String>,
}

impl Writer<'_> {
    fn w(&mut self, list: &[&'static str]) -> &'static str {
        self.rng.pick(list).copied().unwrap_or("thing")
    }

    fn year(&mut self) -> u32 {
        self.rng.range(1650, 2020)
    }

    fn person(&mut self) -> String {
        self.rng.pick(&self.people).cloned().unwrap_or_default()
    }

    fn plural(&mut self) -> String {
        plural(self.w(NOUNS))
    }

    fn sentence(&mut self) -> String {
        let place = self.place.clone();
        match self.rng.below(16) {
            0 => {
                let (year, person) = (self.year(), self.person());
                let (v, a, n) = (self.w(VERBS_PAST), self.w(ADJECTIVES), self.w(NOUNS));
                format!("In {year}, {person} {v} the {a} {n} of {place}.")
            }
            1 => {
                let (ns, a, v) = (self.plural(), self.w(ADJECTIVES), self.w(VERBS_PAST));
                let n = self.w(NOUNS);
                format!("Most {ns} near {place} were {a}, and the town council {v} the {n} twice.")
            }
            2 => {
                let (n, v, k, ns, a) = (
                    self.w(NOUNS),
                    self.w(VERBS_PAST),
                    self.rng.range(2, 900),
                    self.plural(),
                    self.w(ADJECTIVES),
                );
                format!("The {n} {v} {k} {ns} before the {a} season ended.")
            }
            3 => {
                let (p, n, adv, a) = (
                    self.person(),
                    self.w(NOUNS),
                    self.w(ADVERBS),
                    self.w(ADJECTIVES),
                );
                format!("{p} later wrote that the {n} was {adv} {a}.")
            }
            4 => {
                let (k, ns, y1) = (self.rng.range(3, 4000), self.plural(), self.year());
                let y2 = y1 + self.rng.range(1, 60);
                format!("According to local records, {k} {ns} were built between {y1} and {y2}.")
            }
            5 => {
                let (a, b) = (self.w(ADJECTIVES), self.w(ADJECTIVES));
                format!("Visitors often describe {place} as {a} and {b}.")
            }
            6 => {
                let (adv, a, n) = (self.w(ADVERBS), self.w(ADJECTIVES), self.w(NOUNS));
                format!("It is {adv} {a} that the {n} survived at all.")
            }
            7 => {
                let (a, ns, v, n) = (
                    self.w(ADJECTIVES),
                    self.plural(),
                    self.w(VERBS_PAST),
                    self.w(NOUNS),
                );
                format!("During the {a} years, the {ns} of {place} {v} the old {n}.")
            }
            8 => {
                let (a, n, n2, adv, b) = (
                    self.w(ADJECTIVES),
                    self.w(NOUNS),
                    self.w(NOUNS),
                    self.w(ADVERBS),
                    self.w(ADJECTIVES),
                );
                let art = capitalise(article(a));
                format!("{art} {a} {n} still stands beside the {n2}, {adv} {b}.")
            }
            9 => {
                let (k, unit, n, year) = (
                    self.rng.range(1, 99_999),
                    self.w(UNITS),
                    self.w(NOUNS),
                    self.year(),
                );
                format!("Researchers measured {k} {unit} of material at the {n} in {year}.")
            }
            10 => {
                let (n, v, ns) = (self.w(NOUNS), self.w(VERBS_PAST), self.plural());
                format!("Some argue that the {n} {v} the {ns}; others disagree.")
            }
            11 => {
                let ord =
                    ["first", "second", "third", "fourth", "last"][self.rng.below(5) as usize];
                let (n, year, k) = (self.w(NOUNS), self.year(), self.rng.range(10, 250_000));
                format!("The {ord} {n} was finished in {year} and cost {k} coins.")
            }
            12 => {
                let (ns, v, n) = (self.plural(), self.w(VERBS_PAST), self.w(NOUNS));
                format!("Why the {ns} {v} the {n} remains an open question.")
            }
            13 => {
                let (a, ns, b, ms) = (
                    self.w(ADJECTIVES),
                    self.plural(),
                    self.w(ADJECTIVES),
                    self.plural(),
                );
                format!("{place} is known for its {a} {ns} and its {b} {ms}.")
            }
            14 => {
                let (p, q) = (self.person(), self.person());
                let (v, n, pct) = (self.w(VERBS_PAST), self.w(NOUNS), self.rng.range(2, 98));
                format!(
                    "When {p} and {q} {v} the {n}, about {pct} percent of the residents came to watch."
                )
            }
            _ => {
                let (v, a, n) = (self.w(VERBS_PAST), self.w(ADJECTIVES), self.w(NOUNS));
                format!("Nobody {v} the {a} {n} again.")
            }
        }
    }
}

/// English plural of a list noun (the lists avoid irregular nouns).
fn plural(noun: &str) -> String {
    if noun.ends_with('s') || noun.ends_with("ch") || noun.ends_with("sh") || noun.ends_with('x') {
        format!("{noun}es")
    } else if let Some(stem) = noun
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{noun}s")
    }
}

/// A document of a title line, a blank line and paragraphs of 3-7 sentences separated by blank lines.
pub(crate) fn document(rng: &mut SplitMix64) -> String {
    let target = target_words(rng);
    let place = proper_name(rng);
    let people = (0..rng.range(2, 5))
        .map(|_| {
            format!(
                "{} {}",
                rng.pick(FIRST_NAMES).copied().unwrap_or("Ada"),
                proper_name(rng)
            )
        })
        .collect();
    let mut w = Writer { rng, place, people };
    let kind = w.w(PLACE_KINDS);
    let mut doc = String::with_capacity(target * 7);
    let _ = writeln!(doc, "A short history of {}\n", w.place);
    let (adjective, known_for) = (w.w(ADJECTIVES), w.plural());
    let intro = format!(
        "{} is {} {adjective} {kind} known for its {known_for}.",
        w.place,
        article(adjective)
    );
    let mut words = intro.split_whitespace().count();
    doc.push_str(&intro);
    let mut in_paragraph = 1;
    let mut paragraph_len = w.rng.range(3, 7);
    while words < target {
        if in_paragraph == paragraph_len {
            doc.push_str("\n\n");
            in_paragraph = 0;
            paragraph_len = w.rng.range(3, 7);
        } else {
            doc.push(' ');
        }
        let sentence = w.sentence();
        words += sentence.split_whitespace().count();
        doc.push_str(&sentence);
        in_paragraph += 1;
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_of_list_nouns() {
        assert_eq!(plural("library"), "libraries");
        assert_eq!(plural("valley"), "valleys");
        assert_eq!(plural("church"), "churches");
        assert_eq!(plural("box"), "boxes");
        assert_eq!(plural("tower"), "towers");
    }

    #[test]
    fn documents_span_the_length_range() {
        let mut rng = SplitMix64::new(11);
        let lengths: Vec<usize> = (0..300)
            .map(|_| document(&mut rng).split_whitespace().count())
            .collect();
        let (min, max) = (lengths.iter().min().unwrap(), lengths.iter().max().unwrap());
        // A document ends at the first sentence end at or past its target (sentences < 25 words).
        assert!(*min >= MIN_WORDS && *max < MAX_WORDS + 25, "{min}..{max}");
        assert!(
            *min < 300 && *max > 2400,
            "lengths vary a lot: {min}..{max}"
        );
        let short = lengths.iter().filter(|&&n| n < 600).count();
        let long = lengths.iter().filter(|&&n| n >= 1200).count();
        assert!(short > 60 && long > 60, "short {short}, long {long}");
    }

    #[test]
    fn documents_have_a_title_and_paragraphs() {
        let mut rng = SplitMix64::new(5);
        let doc = document(&mut rng);
        let (title, body) = doc.split_once("\n\n").unwrap();
        assert!(title.starts_with("A short history of "));
        assert!(
            body.split("\n\n")
                .all(|p| p.ends_with('.') && !p.starts_with(' '))
        );
    }
}
