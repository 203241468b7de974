//! The lexical analysis against counts computed independently by tools/make_caption_fixture.py
//! on 2,000 captions written for the tests, in CSV, JSONL and Parquet.

use std::path::{Path, PathBuf};

use face_data::captions::{
    analyze_files, tokenize, BadRows, CaptionFormat, CaptionReader, Lexicon, LexiconConfig,
};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captions")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn config() -> LexiconConfig {
    LexiconConfig {
        names: LexiconConfig::read_names(&dir().join("names.txt")).unwrap(),
        top: 25,
        ..Default::default()
    }
}

fn pairs(v: &Value) -> Vec<(String, u64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_u64().unwrap()))
        .collect()
}

fn check(file: &str, kind: &str) {
    let e = expected();
    let r = analyze_files(&[dir().join(file)], "caption", config(), &mut |_| {}).unwrap();
    assert_eq!(r.captions, e["captions"].as_u64().unwrap(), "{file}");
    assert_eq!(r.tokens, e["tokens"].as_u64().unwrap(), "{file}");
    assert_eq!(r.distinct_terms, e["distinct_terms"].as_u64().unwrap());
    let top: Vec<(String, u64)> = r.top_terms.iter().map(|t| (t.term.clone(), t.count)).collect();
    assert_eq!(top, pairs(&e["top_terms"]));
    let bigrams: Vec<(String, u64)> = r.top_ngrams[0]
        .top
        .iter()
        .take(15)
        .map(|t| (t.term.clone(), t.count))
        .collect();
    assert_eq!(r.top_ngrams[0].n, 2);
    assert_eq!(bigrams, pairs(&e["top_bigrams"]));
    assert_eq!(r.top_ngrams[1].n, 3);
    // Names: the list has 12 names plus one duplicate in another case.
    assert_eq!(r.names.list_size, 12);
    assert_eq!(
        r.names.captions_with_name,
        e["captions_with_name"].as_u64().unwrap()
    );
    let names = e["names"].as_object().unwrap();
    assert_eq!(r.names.distinct_identities, names.len());
    for t in &r.names.top {
        assert_eq!(t.count, names[&t.term].as_u64().unwrap(), "{}", t.term);
    }
    assert_eq!(
        r.patterns.depiction_of_name,
        e["depiction_of_name"].as_u64().unwrap()
    );
    assert_eq!(r.patterns.name_at_event, e["name_at_event"].as_u64().unwrap());
    assert_eq!(r.patterns.name_possessive, e["name_possessive"].as_u64().unwrap());
    assert_eq!(
        r.patterns.captions_with_pattern,
        e["captions_with_pattern"].as_u64().unwrap()
    );
    for a in &r.attributes {
        assert_eq!(
            a.captions,
            e["attribute_captions"][&a.category].as_u64().unwrap(),
            "{}",
            a.category
        );
        assert_eq!(
            a.occurrences,
            e["attribute_occurrences"][&a.category].as_u64().unwrap(),
            "{}",
            a.category
        );
    }
    let scripts = e["scripts"].as_object().unwrap();
    assert_eq!(r.scripts.len(), scripts.len());
    for s in &r.scripts {
        assert_eq!(s.count, scripts[&s.term].as_u64().unwrap(), "script {}", s.term);
    }
    let b = &e["bad_rows"][kind];
    let bad = &r.bad_rows;
    assert_eq!(
        [
            bad.missing_column,
            bad.invalid_utf8,
            bad.empty,
            bad.null,
            bad.malformed
        ],
        ["missing_column", "invalid_utf8", "empty", "null", "malformed"].map(|k| b[k].as_u64().unwrap()),
        "{file}: {bad:?}"
    );
    assert_eq!(bad.examples.len() as u64, bad.total());
    assert_eq!(r.count_error_bound, 0);
    assert_eq!(r.files[0].rows, r.captions + bad.total());
}

#[test]
fn csv_counts_match_the_reference() {
    check("captions.csv", "csv");
}

#[test]
fn jsonl_counts_match_the_reference() {
    check("captions.jsonl", "jsonl");
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_counts_match_the_reference() {
    check("captions.parquet", "parquet");
}

#[test]
fn bad_rows_name_their_row() {
    let mut bad = BadRows::default();
    let mut r = CaptionReader::open(&dir().join("captions.csv"), CaptionFormat::Csv, "caption").unwrap();
    while r.next_batch(100, &mut bad).unwrap().is_some() {}
    // The short row comes after data row 11 (0-based caption 10), so it is row 12.
    assert_eq!(bad.examples[0].row, 12);
    assert_eq!(
        bad.examples[0].kind,
        face_data::captions::BadRowKind::MissingColumn
    );
    assert_eq!(bad.examples[1].kind, face_data::captions::BadRowKind::InvalidUtf8);
}

#[test]
fn file_level_errors_are_clear() {
    let e = CaptionReader::open(&dir().join("captions.csv"), CaptionFormat::Csv, "text").unwrap_err();
    assert!(
        e.to_string().contains("no column \"text\"") && e.to_string().contains("caption"),
        "{e}"
    );
    let e = analyze_files(&[dir().join("names.txt")], "caption", config(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("names.txt"), "{e}");
    assert!(CaptionReader::open(&dir().join("nope.csv"), CaptionFormat::Csv, "caption").is_err());
    #[cfg(feature = "parquet")]
    {
        let e =
            CaptionReader::open(&dir().join("captions.parquet"), CaptionFormat::Parquet, "text").unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
    }
    assert!(Lexicon::new(LexiconConfig {
        max_ngram: 0,
        ..Default::default()
    })
    .is_err());
}

#[test]
fn tokenizer_rules() {
    let (mut l, mut n, mut s) = (String::new(), String::new(), Vec::new());
    tokenize(
        "Maria Lindqvist's NEW look, 2019!  Ça va?",
        &mut l,
        &mut n,
        &mut s,
    );
    assert_eq!(n, "maria lindqvist new look 2019 ça va");
    assert!(s[1].2 && !s[0].2, "the possessive is split off and remembered");
    tokenize("微笑的女人", &mut l, &mut n, &mut s);
    assert_eq!(s.len(), 5, "Han characters are words of their own");
    tokenize("   ", &mut l, &mut n, &mut s);
    assert!(s.is_empty());
}

#[test]
fn pruning_bounds_memory_and_reports_the_bound() {
    // 3,000 distinct terms seen once plus one frequent term; cap 1,000 entries per table.
    let mut lex = Lexicon::new(LexiconConfig {
        max_terms: 1000,
        max_ngram: 1,
        ..Default::default()
    })
    .unwrap();
    let batch: Vec<String> = (0..3000).map(|i| format!("frequent term{i}")).collect();
    lex.add_batch(&batch);
    let r = lex.report(BadRows::default());
    assert!(r.distinct_terms <= 1000);
    assert_eq!(r.count_error_bound, 1);
    assert_eq!(r.top_terms[0].term, "frequent");
    assert_eq!(r.top_terms[0].count, 3000);
    // A second pruning adds its threshold: an entry dropped twice may miss both counts.
    let batch: Vec<String> = (0..3000).map(|i| format!("frequent other{i} other{i}")).collect();
    lex.add_batch(&batch);
    let r = lex.report(BadRows::default());
    assert_eq!(r.count_error_bound, 3, "thresholds 1 then 2");
    assert_eq!(r.top_terms[0].count, 6000);
}

#[test]
fn report_files_are_written() {
    let r = analyze_files(&[dir().join("captions.csv")], "caption", config(), &mut |_| {}).unwrap();
    let out = std::env::temp_dir().join(format!("facekit-lexicon-{}", std::process::id()));
    r.write(&out).unwrap();
    let back: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(back["captions"], 2000);
    let svg = std::fs::read_to_string(out.join("top_names.svg")).unwrap();
    assert!(svg.contains("Maria Lindqvist"), "the chart labels the bars");
    assert!(r.summary().contains("distinct identities"));
    std::fs::remove_dir_all(&out).ok();
}
