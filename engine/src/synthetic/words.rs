//! Word lists and small English helpers shared by the text-producing generators.
//!
//! Fixed lists compiled into the binary (no files to find at run time, no dependency whose contents
//! could change), varied enough that OCR lines and long documents do not repeat and tokenize to very
//! different lengths. Everything is ASCII so that the bitmap font can draw any of it.

use super::rng::SplitMix64;

pub(crate) const NOUNS: &[&str] = &[
    "river",
    "bridge",
    "market",
    "harbour",
    "garden",
    "library",
    "tower",
    "valley",
    "forest",
    "school",
    "orchard",
    "mill",
    "canal",
    "station",
    "festival",
    "theatre",
    "museum",
    "lighthouse",
    "quarry",
    "vineyard",
    "workshop",
    "archive",
    "bakery",
    "chapel",
    "meadow",
    "island",
    "road",
    "factory",
    "observatory",
    "railway",
    "square",
    "fountain",
    "cellar",
    "tunnel",
    "dam",
    "farm",
    "pier",
    "village",
    "courtyard",
    "greenhouse",
    "kiln",
    "loom",
    "clock",
    "engine",
    "compass",
    "map",
    "ledger",
    "lantern",
    "ferry",
    "well",
    "granary",
    "stadium",
    "hospital",
    "castle",
    "monastery",
    "barn",
    "dock",
    "gate",
    "wall",
    "path",
    "cottage",
    "inn",
    "studio",
    "laboratory",
    "printing press",
    "telescope",
    "glacier",
    "reef",
    "delta",
    "plateau",
    "dune",
    "marsh",
    "spring",
    "cliff",
    "cave",
    "pasture",
    "hedge",
];

pub(crate) const ADJECTIVES: &[&str] = &[
    "old",
    "quiet",
    "narrow",
    "busy",
    "ancient",
    "modern",
    "famous",
    "forgotten",
    "wooden",
    "stone",
    "crowded",
    "remote",
    "colourful",
    "damp",
    "bright",
    "northern",
    "southern",
    "eastern",
    "western",
    "tiny",
    "enormous",
    "elegant",
    "plain",
    "sturdy",
    "fragile",
    "curious",
    "patient",
    "generous",
    "stubborn",
    "careful",
    "hidden",
    "public",
    "private",
    "seasonal",
    "rare",
    "common",
    "windy",
    "frozen",
    "golden",
    "muddy",
    "steep",
    "gentle",
    "restless",
    "sleepy",
    "noisy",
    "peculiar",
    "ordinary",
    "remarkable",
    "modest",
    "ambitious",
];

pub(crate) const VERBS_PAST: &[&str] = &[
    "repaired",
    "painted",
    "measured",
    "moved",
    "described",
    "ignored",
    "replaced",
    "studied",
    "protected",
    "crossed",
    "visited",
    "mapped",
    "rebuilt",
    "sold",
    "carried",
    "abandoned",
    "celebrated",
    "counted",
    "opened",
    "closed",
    "photographed",
    "recorded",
    "expanded",
    "restored",
    "inspected",
    "designed",
    "financed",
    "surveyed",
    "guarded",
    "cleaned",
    "renamed",
    "flooded",
    "supplied",
    "connected",
    "divided",
    "decorated",
    "catalogued",
    "explored",
    "praised",
    "questioned",
];

pub(crate) const ADVERBS: &[&str] = &[
    "surprisingly",
    "remarkably",
    "quietly",
    "slowly",
    "rarely",
    "often",
    "briefly",
    "widely",
    "carefully",
    "reluctantly",
    "eventually",
    "almost",
    "entirely",
    "hardly",
    "frequently",
    "openly",
];

pub(crate) const PLACE_KINDS: &[&str] = &[
    "river town",
    "mountain village",
    "port city",
    "island",
    "valley",
    "market town",
    "district",
    "county",
    "coastal settlement",
    "farming region",
    "university town",
    "border crossing",
];

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ada", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kaya",
    "Luca", "Maren", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sven", "Tamar", "Umar", "Vera",
    "Wen", "Yusuf", "Zofia",
];

pub(crate) const UNITS: &[&str] = &[
    "tonnes",
    "litres",
    "kilometres",
    "metres",
    "hectares",
    "crates",
    "barrels",
    "sacks",
];

const SYLLABLES: &[&str] = &[
    "vel", "mo", "ra", "tan", "is", "cor", "bel", "un", "dra", "ke", "lin", "sa", "tor", "mi",
    "quen", "a", "zar", "o", "ny", "ther", "bro", "ka", "les", "vin", "do", "ru", "fen", "ost",
    "ha", "pel",
];

/// Words for OCR lines: plain words, short labels and codes.
const OCR_WORDS: &[&str] = &[
    "total", "invoice", "date", "name", "price", "amount", "order", "table", "page", "room",
    "exit", "open", "closed", "sale", "fresh", "coffee", "tea", "bread", "milk", "apple", "lemon",
    "ticket", "gate", "train", "bus", "stop", "platform", "north", "south", "east", "west", "left",
    "right", "warning", "notice", "welcome", "hello", "thanks", "street", "avenue", "floor",
    "level", "zone", "box", "item", "qty", "code", "batch", "serial", "model", "version", "report",
    "chart", "figure", "summary", "note", "draft", "final", "paid", "due", "balance", "card",
    "cash", "receipt", "menu", "soup", "salad", "water", "juice", "office", "desk", "chair",
    "lamp", "window", "door", "key",
];

/// Longest token [`ocr_token`] returns; text layout relies on it being below `scene::MIN_LINE_CHARS`.
pub(crate) const MAX_OCR_TOKEN_LEN: usize = 11;

/// One OCR token: a word (lowercase, Capitalised or UPPER), a number, a price, a code such as
/// `AB-1234`, or a word with trailing punctuation. At most [`MAX_OCR_TOKEN_LEN`] characters.
pub(crate) fn ocr_token(rng: &mut SplitMix64) -> String {
    let word = *rng.pick(OCR_WORDS).unwrap_or(&"text");
    let token = match rng.below(12) {
        0..=4 => word.to_string(),
        5 => capitalise(word),
        6 => word.to_ascii_uppercase(),
        7 => rng.range(0, 99_999).to_string(),
        8 => format!("{}.{:02}", rng.range(0, 999), rng.range(0, 99)),
        9 => {
            let a = (b'A' + rng.below(26) as u8) as char;
            let b = (b'A' + rng.below(26) as u8) as char;
            format!("{a}{b}-{}", rng.range(100, 9999))
        }
        10 => format!("{word}:"),
        _ => format!("{word}{}", [",", ".", "!", "?", ";"][rng.below(5) as usize]),
    };
    if token.len() > MAX_OCR_TOKEN_LEN {
        word.to_string()
    } else {
        token
    }
}

/// A made-up proper name of 2-3 syllables ("Velmora").
pub(crate) fn proper_name(rng: &mut SplitMix64) -> String {
    let n = rng.range(2, 3);
    let mut name = String::new();
    for _ in 0..n {
        name.push_str(rng.pick(SYLLABLES).unwrap_or(&"a"));
    }
    capitalise(&name)
}

/// First letter upper-cased (ASCII).
pub(crate) fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The English word for small counts ("three"); digits from 13 on.
pub(crate) fn number_word(n: usize) -> String {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    WORDS
        .get(n)
        .map_or_else(|| n.to_string(), |w| (*w).to_string())
}

/// "a" or "an" for the word that follows.
pub(crate) fn article(next_word: &str) -> &'static str {
    match next_word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocr_tokens_are_short_printable_and_spaceless() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..5000 {
            let t = ocr_token(&mut rng);
            assert!(!t.is_empty() && t.len() <= MAX_OCR_TOKEN_LEN, "{t}");
            assert!(t.bytes().all(|b| (0x21..0x7f).contains(&b)), "{t}");
        }
    }

    #[test]
    fn english_helpers() {
        assert_eq!(number_word(3), "three");
        assert_eq!(number_word(40), "40");
        assert_eq!(article("orange"), "an");
        assert_eq!(article("red"), "a");
        assert_eq!(capitalise("velmora"), "Velmora");
        assert_eq!(capitalise(""), "");
    }
}
