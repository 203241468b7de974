//! Parsers against the committed fixtures (real layouts, a few lines each), round trips, and
//! malformed input that must name file and line.

use std::path::{Path, PathBuf};

use face_data::formats::celeba::{self, CelebA, CelebaAttributes, Partition};
use face_data::formats::folders::{
    parse_age_gender_csv, parse_utkface_name, scan_utkface, Gender, ImageFolder,
};
use face_data::formats::ijb::{
    parse_face_tid_mid, parse_name_5pts_score, parse_template_pairs, IjbBenchmark, IjbProtocol,
};
use face_data::formats::lfw::LfwPairs;
use face_data::formats::recordio::{self, InsightFaceRecordSet, RecordIoReader, RecordIoWriter};
use face_data::DataError;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The `(path, line)` of a parse error, failing the test for any other error.
fn parse_at(e: DataError) -> (PathBuf, usize, String) {
    match e {
        DataError::Parse { path, line, message } => (path, line, message),
        other => panic!("expected a parse error, got {other}"),
    }
}

#[test]
fn celeba_fixture_joins_all_tables() {
    let c = CelebA::load(&fixtures().join("celeba")).unwrap();
    assert_eq!(c.images.len(), 5);
    assert_eq!(c.images[0].file, "000001.jpg");
    assert_eq!(c.images[0].identity, 2880);
    assert_eq!(c.images[4].identity, 2880);
    assert_eq!(c.images[2].partition, Partition::Validation);
    assert_eq!(c.split(Partition::Test).count(), 2);
    assert_eq!(
        c.images[0].landmarks,
        Some([
            [69.0, 109.0],
            [106.0, 113.0],
            [77.0, 142.0],
            [73.0, 152.0],
            [108.0, 154.0]
        ])
    );
    let a = &c.attributes;
    assert_eq!(a.names.len(), 40);
    assert_eq!(a.names[0], "5_o_Clock_Shadow");
    assert_eq!(a.names[39], "Young");
    let male = a.index_of("Male").unwrap();
    let glasses = a.index_of("Eyeglasses").unwrap();
    let males: Vec<bool> = (0..5).map(|r| a.get(r, male)).collect();
    assert_eq!(males, [false, false, true, true, false]);
    assert!(a.get(3, glasses) && !a.get(0, glasses));
    // Row 1 of the file, column 0 and 3 (`1 … 1`), column 2 (`-1`).
    assert!(a.get(0, 0) && a.get(0, 3) && !a.get(0, 2));

    let bbox_path = fixtures().join("celeba/list_bbox_celeba.txt");
    let boxes = celeba::parse_bboxes(&std::fs::read_to_string(&bbox_path).unwrap(), &bbox_path).unwrap();
    assert_eq!(
        boxes[3].1,
        celeba::BoundingBox {
            x: 622.0,
            y: 257.0,
            width: 564.0,
            height: 781.0
        }
    );
}

#[test]
fn celeba_errors_name_file_and_line() {
    let p = Path::new("list_attr_celeba.txt");
    // Declared 3 rows, file has 2.
    let (_, line, msg) =
        parse_at(CelebaAttributes::parse("3\nA B\nx.jpg 1 -1\ny.jpg -1 -1\n", p).unwrap_err());
    assert_eq!(line, 1);
    assert!(msg.contains("declares 3"), "{msg}");
    // A value that is not ±1, on line 4.
    let (path, line, msg) =
        parse_at(CelebaAttributes::parse("2\nA B\nx.jpg 1 -1\ny.jpg 0 -1\n", p).unwrap_err());
    assert_eq!((path.as_path(), line), (p, 4));
    assert!(msg.contains("\"0\""), "{msg}");
    // A missing value.
    let (_, line, _) = parse_at(CelebaAttributes::parse("1\nA B\nx.jpg 1\n", p).unwrap_err());
    assert_eq!(line, 3);
    let (_, line, _) = parse_at(celeba::parse_partitions("a.jpg 0\nb.jpg 3\n", p).unwrap_err());
    assert_eq!(line, 2);
    let (_, line, _) = parse_at(celeba::parse_identities("a.jpg 12\n\nb.jpg x\n", p).unwrap_err());
    assert_eq!(line, 3, "blank lines keep the numbering");
    let (_, line, _) =
        parse_at(celeba::parse_landmarks("1\nonly two\na.jpg 1 2 3 4 5 6 7 8 9 10\n", p).unwrap_err());
    assert_eq!(line, 2);
    assert!(celeba::parse_landmarks("1\na b c d e f g h i j\na.jpg 1 2 3 4 5 6 7 8 9 NaN\n", p).is_err());
}

#[test]
fn celeba_join_reports_missing_rows() {
    let attrs = CelebaAttributes::parse("1\nA\na.jpg 1\n", Path::new("x")).unwrap();
    let e = CelebA::join(
        vec![("a.jpg".into(), 1), ("b.jpg".into(), 2)],
        vec![("a.jpg".into(), Partition::Train)],
        attrs,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("b.jpg"), "{e}");
}

#[test]
fn lfw_pairs_fixture() {
    let p = LfwPairs::read(&fixtures().join("lfw/pairs.txt")).unwrap();
    assert_eq!((p.folds, p.per_fold, p.pairs.len()), (2, 2, 8));
    let f0 = p.fold(0);
    assert!(f0[0].same && f0[1].same && !f0[2].same && !f0[3].same);
    assert_eq!(
        f0[0].a.relative_path(),
        Path::new("Abel_Pacheco/Abel_Pacheco_0001.jpg")
    );
    assert_eq!(
        f0[0].b.relative_path(),
        Path::new("Abel_Pacheco/Abel_Pacheco_0004.jpg")
    );
    assert_eq!(f0[2].b.name, "Dean_Barker");
    assert_eq!(p.fold(1)[3].a.number, 2);
    assert!(p.fold(2).is_empty());
    assert_eq!(p.images().len(), 15);
    let dev = LfwPairs::read(&fixtures().join("lfw/pairsDevTrain.txt")).unwrap();
    assert_eq!((dev.folds, dev.per_fold), (1, 2));
    assert_eq!(
        dev.pairs[..],
        p.fold(1)[..]
            .iter()
            .map(|x| face_data::formats::lfw::LfwPair { fold: 0, ..x.clone() })
            .collect::<Vec<_>>()[..]
    );
}

#[test]
fn lfw_errors() {
    let p = Path::new("pairs.txt");
    // A mismatched line where a matched one is due.
    let (_, line, msg) = parse_at(LfwPairs::parse("1\t1\nA\t1\tB\t2\nA\t1\tB\t2\n", p).unwrap_err());
    assert_eq!(line, 2);
    assert!(msg.contains("matched"), "{msg}");
    // Too few lines.
    let (_, line, msg) = parse_at(LfwPairs::parse("1\t2\nA\t1\t2\nA\t1\t3\nA\t1\tB\t1\n", p).unwrap_err());
    assert_eq!(line, 4);
    assert!(msg.contains("promises 4"), "{msg}");
    // Image number 0.
    let (_, line, _) = parse_at(LfwPairs::parse("1\nA\t0\t2\nA\t1\tB\t1\n", p).unwrap_err());
    assert_eq!(line, 2);
    // Too many lines.
    assert!(LfwPairs::parse("1\nA\t1\t2\nA\t1\tB\t1\nA\t1\tB\t1\n", p).is_err());
    // Same person in a mismatched pair.
    assert!(LfwPairs::parse("1\nA\t1\t2\nA\t1\tA\t3\n", p).is_err());
    assert!(LfwPairs::parse("", p).is_err());
    assert!(LfwPairs::parse("x y z\n", p).is_err());
}

#[test]
fn ijbc_protocol_fixture() {
    let root = fixtures().join("ijbc");
    let proto = IjbProtocol::load(&root, IjbBenchmark::IjbC).unwrap();
    assert_eq!(proto.faces.len(), 6);
    assert_eq!(proto.faces[1].template, 1);
    assert_eq!(proto.faces[1].media, 3720);
    assert_eq!(proto.pairs.len(), 3);
    assert!(proto.pairs[1].genuine && !proto.pairs[0].genuine);
    assert_eq!(proto.landmarks[0].points[0], [46.060, 62.026]);
    assert_eq!(proto.landmarks[0].faceness, 0.999595);
    assert_eq!(proto.templates()[&3], vec![4, 5]);
    assert_eq!(proto.image_dir, root.join("loose_crop"));
    // IJB-B files are absent: the error names the file.
    let e = IjbProtocol::load(&root, IjbBenchmark::IjbB).unwrap_err();
    assert!(e.to_string().contains("ijbb_face_tid_mid.txt"), "{e}");
}

#[test]
fn ijb_errors_and_consistency() {
    let p = Path::new("m.txt");
    let (_, line, _) = parse_at(parse_face_tid_mid("1.jpg 1 2\n2.jpg 1\n", p).unwrap_err());
    assert_eq!(line, 2);
    let (_, line, msg) = parse_at(parse_template_pairs("1 2 1\n1 3 2\n", p).unwrap_err());
    assert_eq!(line, 2);
    assert!(msg.contains("0 or 1"));
    let (_, line, _) = parse_at(parse_name_5pts_score("a.jpg 1 2 3 4 5 6 7 8 9 10 inf\n", p).unwrap_err());
    assert_eq!(line, 1);
    let faces = parse_face_tid_mid("1.jpg 1 2\n2.jpg 2 3\n", p).unwrap();
    let lms = parse_name_5pts_score(
        "1.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n3.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n",
        p,
    )
    .unwrap();
    let e = IjbProtocol::from_parts(faces.clone(), lms, vec![], "x".into()).unwrap_err();
    assert!(e.to_string().contains("row 2"), "{e}");
    let lms = parse_name_5pts_score(
        "1.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n2.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n",
        p,
    )
    .unwrap();
    let pairs = parse_template_pairs("1 7 0\n", p).unwrap();
    let e = IjbProtocol::from_parts(faces, lms, pairs, "x".into()).unwrap_err();
    assert!(e.to_string().contains("template 7"), "{e}");
}

#[derive(serde::Deserialize)]
struct Expected {
    flag: u32,
    labels: Vec<f32>,
    payload_len: usize,
    payload_sha256: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    mean_rgb: Option<[f64; 3]>,
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fixture was written by MXNet 1.9.1's own `MXIndexedRecordIO` (tools/make_recordio_fixture.py),
/// including one record that MXNet split into 3 parts around embedded magic words.
#[test]
fn recordio_reads_mxnet_written_set() {
    let dir = fixtures().join("recordio");
    let expected: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected["multi_part_records"], 2);
    let set = InsightFaceRecordSet::open(&dir).unwrap();
    assert_eq!(set.len(), 6, "header record 0 says images are keys 1..7");
    for i in 0..set.len() {
        let key = set.key(i).unwrap();
        let e: Expected = serde_json::from_value(expected[&key.to_string()].clone()).unwrap();
        let rec = set.reader().image(key).unwrap();
        assert_eq!(rec.header.flag, e.flag, "key {key}");
        assert_eq!(rec.header.id, key);
        assert_eq!(rec.labels, e.labels, "key {key}");
        assert_eq!(rec.payload.len(), e.payload_len);
        assert_eq!(
            sha256_hex(&rec.payload),
            e.payload_sha256.unwrap(),
            "key {key} payload differs"
        );
        let img = face_data::decode_rgb(&rec.payload, Path::new("x")).unwrap();
        assert_eq!((img.width(), img.height()), (e.width.unwrap(), e.height.unwrap()));
        // Different JPEG decoders (zune-jpeg here, libjpeg-turbo in Pillow) may differ by a few
        // levels per pixel; the mean agrees closely.
        let mean = e.mean_rgb.unwrap();
        for c in 0..3 {
            let m: f64 =
                img.pixels().map(|p| f64::from(p[c])).sum::<f64>() / f64::from(img.width() * img.height());
            assert!(
                (m - mean[c]).abs() < 1.5,
                "key {key} channel {c}: {m} vs Pillow {}",
                mean[c]
            );
        }
        let (label, _) = set.get(i).unwrap();
        assert_eq!(label as f32, e.labels[0]);
    }
    assert_eq!(set.labels().unwrap(), vec![0, 0, 1, 1, 1, 2]);
    // The header record 0 and identity headers are readable too.
    let h = set.reader().image(0).unwrap();
    assert_eq!(h.labels, vec![7.0, 10.0]);
    assert!(set.get(6).is_err());
}

#[test]
fn recordio_writer_round_trips_and_matches_mxnet_bytes() {
    let dir = fixtures().join("recordio");
    let reader = RecordIoReader::open(&dir.join("train.rec"), &dir.join("train.idx")).unwrap();
    let tmp = std::env::temp_dir().join(format!("facekit-rec-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut w = RecordIoWriter::create(&tmp.join("train.rec"), &tmp.join("train.idx")).unwrap();
    for &k in reader.keys() {
        w.write(k, &reader.read(k).unwrap()).unwrap();
    }
    w.finish().unwrap();
    // Our framing reproduces MXNet's file byte for byte, split record included.
    assert_eq!(
        std::fs::read(tmp.join("train.rec")).unwrap(),
        std::fs::read(dir.join("train.rec")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(tmp.join("train.idx")).unwrap(),
        std::fs::read_to_string(dir.join("train.idx")).unwrap()
    );
    // pack/unpack round trip.
    let data = recordio::pack(9, &[3.0, 4.5], b"abc");
    let (h, labels, payload) = recordio::unpack(&data).unwrap();
    assert_eq!(
        (h.flag, h.id, labels, payload),
        (2, 9, vec![3.0, 4.5], &b"abc"[..])
    );
    let data = recordio::pack(1, &[7.0], b"");
    assert_eq!(recordio::unpack(&data).unwrap().1, vec![7.0]);
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn recordio_corruption_is_an_error() {
    let rec = std::fs::read(fixtures().join("recordio/train.rec")).unwrap();
    // Bad magic.
    let mut bad = rec.clone();
    bad[0] ^= 0xff;
    assert!(recordio::read_record(&bad, 0).unwrap_err().contains("magic"));
    // Truncated inside the split record (key 3 at 1776).
    assert!(recordio::read_record(&rec[..1800], 1776).is_err());
    // A continuation part without a start.
    let mut cont = Vec::new();
    cont.extend_from_slice(&recordio::RECORDIO_MAGIC.to_le_bytes());
    cont.extend_from_slice(&(3u32 << 29).to_le_bytes());
    assert!(recordio::read_record(&cont, 0).is_err());
    // Short header; too many labels announced.
    assert!(recordio::unpack(&[0; 10]).is_err());
    let mut d = recordio::pack(1, &[1.0, 2.0], b"");
    d[0] = 200;
    assert!(recordio::unpack(&d).unwrap_err().contains("200 labels"));
    // Index problems: duplicate key, offset past the end, unknown key.
    let p = Path::new("train.idx");
    let (_, line, _) = parse_at(recordio::parse_index("0\t0\n0\t8\n", p).unwrap_err());
    assert_eq!(line, 2);
    let tmp = std::env::temp_dir().join(format!("facekit-idx-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("x.idx"), "0\t999999\n").unwrap();
    let e = RecordIoReader::open(&fixtures().join("recordio/train.rec"), &tmp.join("x.idx")).unwrap_err();
    assert!(e.to_string().contains("past the end"), "{e}");
    let r = RecordIoReader::open(
        &fixtures().join("recordio/train.rec"),
        &fixtures().join("recordio/train.idx"),
    )
    .unwrap();
    assert!(r.read(42).unwrap_err().to_string().contains("key 42"));
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn image_folder_utkface_and_csv() {
    let tmp = std::env::temp_dir().join(format!("facekit-folders-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (d, f) in [
        ("bob", "2.jpg"),
        ("bob", "1.png"),
        ("alice", "a.jpg"),
        ("alice", "notes.txt"),
        ("carol", ".hidden.jpg"),
    ] {
        std::fs::create_dir_all(tmp.join("tree").join(d)).unwrap();
        std::fs::write(tmp.join("tree").join(d).join(f), b"x").unwrap();
    }
    let folder = ImageFolder::scan(&tmp.join("tree")).unwrap();
    assert_eq!(folder.identities, ["alice", "bob", "carol"]);
    assert_eq!(folder.labels(), [0, 1, 1]);
    assert!(folder.images[1].path.ends_with("bob/1.png"));

    let utk = tmp.join("utk");
    std::fs::create_dir_all(&utk).unwrap();
    for f in [
        "25_0_2_20170116174525125.jpg.chip.jpg",
        "61_1_20170109142408075.jpg",
        "3_1_4_20161221193016140.jpg",
    ] {
        std::fs::write(utk.join(f), b"x").unwrap();
    }
    let scan = scan_utkface(&utk).unwrap();
    assert_eq!(scan.images.len(), 2);
    assert_eq!(
        scan.rejected.len(),
        1,
        "the file without race is reported, not dropped"
    );
    assert!(scan.rejected[0].to_string().contains("61_1_2017"));
    let a = parse_utkface_name(Path::new("25_0_2_20170116174525125.jpg.chip.jpg")).unwrap();
    assert_eq!((a.age, a.gender, a.race), (25.0, Gender::Male, Some(2)));
    assert!(parse_utkface_name(Path::new("130_0_1_x.jpg")).is_err());
    assert!(parse_utkface_name(Path::new("x_0_1_x.jpg")).is_err());

    let csv = "path,age,gender,extra\nimgs/a.jpg,31,f,1\n\"imgs/b, c.jpg\",4.5,male,2\n";
    let rows = parse_age_gender_csv(csv, Path::new("ages.csv"), Path::new("/data")).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].path, Path::new("/data/imgs/a.jpg"));
    assert_eq!((rows[1].age, rows[1].gender), (4.5, Gender::Male));
    assert_eq!(rows[1].path, Path::new("/data/imgs/b, c.jpg"));
    let (_, line, msg) = parse_at(
        parse_age_gender_csv(
            "path,age,gender\na.jpg,31,f\nb.jpg,-3,m\n",
            Path::new("a.csv"),
            Path::new("."),
        )
        .unwrap_err(),
    );
    assert_eq!(line, 3);
    assert!(msg.contains("-3"));
    let (_, line, _) = parse_at(
        parse_age_gender_csv(
            "path,age,gender\na.jpg,31,x\n",
            Path::new("a.csv"),
            Path::new("."),
        )
        .unwrap_err(),
    );
    assert_eq!(line, 2);
    assert!(
        parse_age_gender_csv("file,age,gender\n", Path::new("a.csv"), Path::new("."))
            .unwrap_err()
            .to_string()
            .contains("`path`")
    );
    std::fs::remove_dir_all(&tmp).ok();
}
