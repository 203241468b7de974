//! Criterion bench of the caption lexical analysis on a generated corpus of 5 M captions
//! (Parquet, snappy), written by
//! `python tools/make_caption_fixture.py --bench --rows 5000000 out/bench-captions/corpus.parquet`.
//! The anchor, `tools/bench_lexicon_python.py`, runs the same analysis in Python (pyarrow +
//! regex + collections.Counter) on the same file in the same sitting (docs/BENCHMARKS.md).
//! Override the corpus with FACEKIT_CAPTIONS.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use face_data::captions::{analyze_files, LexiconConfig};

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var("FACEKIT_CAPTIONS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("out/bench-captions/corpus.parquet"));
    if !corpus.is_file() {
        eprintln!(
            "lexicon bench: {} missing; generate it with tools/make_caption_fixture.py --bench",
            corpus.display()
        );
        return;
    }
    let names = LexiconConfig::read_names(&root.join("crates/face-data/tests/fixtures/captions/names.txt"))
        .expect("names");
    let config = LexiconConfig {
        names,
        ..Default::default()
    };
    let rows = analyze_files(
        std::slice::from_ref(&corpus),
        "caption",
        config.clone(),
        &mut |_| {},
    )
    .expect("corpus")
    .captions;
    let mut g = c.benchmark_group("lexicon");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows));
    g.bench_function(format!("parquet_{rows}_captions"), |b| {
        b.iter(|| {
            analyze_files(
                std::slice::from_ref(&corpus),
                "caption",
                config.clone(),
                &mut |_| {},
            )
            .expect("analysis")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
