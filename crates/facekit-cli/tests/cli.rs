//! The `facekit` program end to end on the bundled real models and faces: results,
//! JSON, exit codes, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn faces(name: &str) -> PathBuf {
    repo().join("data/faces").join(name)
}

fn facekit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args(args)
        .env("FACEKIT_MODELS", repo().join("models"))
        .output()
        .expect("run facekit")
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("facekit-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A folder `into` holding copies of the named bundled faces.
fn bundled_faces(into: &Path, names: &[&str]) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    for f in names {
        std::fs::copy(faces(f), into.join(f)).unwrap();
    }
    into.to_path_buf()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn verify_accepts_obama_twice_and_rejects_obama_biden() {
    let o = facekit(&[
        "verify",
        s(&faces("obama.jpg")),
        s(&faces("obama2.jpg")),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["same_person"], true);
    let same = j["score"].as_f64().unwrap();
    assert!(same > 0.6, "obama×2 score {same}");
    // The default decision comes from the bundled calibration at FAR 1e-2: 1,636 real impostor
    // pairs (data/dev-faces), which resolve FAR down to 1/1636.
    let from = &j["decision_from"];
    assert!(from["calibration"]
        .as_str()
        .unwrap()
        .ends_with("fr_feature.calibration.json"));
    assert_eq!(from["calibration_impostors"], 1636);
    assert!((from["resolved_far"].as_f64().unwrap() - 1.0 / 1636.0).abs() < 1e-12);
    assert_eq!(j["threshold"], from["entry"]["threshold"]);
    assert!(stderr(&o).is_empty(), "FAR 1e-2 is resolved: {}", stderr(&o));
    // A finer FAR than the calibration resolves still decides, with a warning saying so.
    let o = facekit(&[
        "verify",
        s(&faces("obama.jpg")),
        s(&faces("obama2.jpg")),
        "--far",
        "1e-4",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning") && stderr(&o).contains("1/1636"),
        "{}",
        stderr(&o)
    );

    let o = facekit(&["verify", s(&faces("obama.jpg")), s(&faces("biden.jpg")), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["same_person"], false);
    assert!(j["score"].as_f64().unwrap() < 0.2);

    // Tight greyscale 150-px crops (data/dev-faces/tight-grey) go through the same path.
    let grey = |f: &str| repo().join("data/dev-faces/tight-grey").join(f);
    let o = facekit(&[
        "verify",
        s(&grey("angelina/img1.jpg")),
        s(&grey("angelina/img10.jpg")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = facekit(&[
        "verify",
        s(&grey("angelina/img1.jpg")),
        s(&grey("jennifer/img3.jpg")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // An explicit threshold decides.
    let o = facekit(&[
        "verify",
        s(&faces("obama.jpg")),
        s(&faces("biden.jpg")),
        "--threshold=-0.5",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("same person"));
}

#[test]
fn bad_input_gives_one_line_and_exit_code_3() {
    let o = facekit(&["verify", s(&faces("obama.jpg")), "no/such.jpg"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no/such.jpg"), "{}", stderr(&o));
    // A usage error is clap's 2.
    assert_eq!(facekit(&["verify", "a.jpg"]).status.code(), Some(2));
    assert_eq!(facekit(&["frobnicate"]).status.code(), Some(2));
    // A FAR the calibration does not have.
    let o = facekit(&[
        "verify",
        s(&faces("obama.jpg")),
        s(&faces("obama2.jpg")),
        "--far",
        "0.5",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no threshold for FAR 5e-1"), "{}", stderr(&o));
    // A corrupt gallery is named; --json reports the error as JSON too.
    let dir = tmp("bad");
    let g = dir.join("broken.fkg");
    std::fs::write(&g, b"FKGALRY1 but not really").unwrap();
    let o = facekit(&["--json", "search", "--gallery", s(&g), s(&faces("obama.jpg"))]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("broken.fkg"), "{}", stderr(&o));
    assert_eq!(json_of(&o)["exit_code"], 3);
    // A model folder that is not a run.
    let o = facekit(&[
        "verify",
        s(&faces("obama.jpg")),
        s(&faces("obama2.jpg")),
        "--model",
        s(&dir),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("student.bin"), "{}", stderr(&o));
    // An image without a face: nothing is written under the output name.
    let blank = dir.join("blank.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([200, 200, 200]))
        .save(&blank)
        .unwrap();
    let out = dir.join("none.fkg");
    let o = facekit(&["embed", s(&blank), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no face"), "{}", stderr(&o));
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embed_then_search_finds_the_same_person() {
    let dir = tmp("search");
    let gallery = dir.join("g.fkg");
    let people = [
        "obama.jpg",
        "obama2.jpg",
        "biden.jpg",
        "astronaut.png",
        "faceapi_sample1.jpg",
    ];
    let mut args = vec![
        "--json".to_owned(),
        "embed".into(),
        "--out".into(),
        s(&gallery).into(),
    ];
    args.extend(people.iter().map(|p| s(&faces(p)).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = facekit(&refs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["embedded"], 5);
    assert_eq!(j["dim"], 512);
    for storage in ["f32", "int8"] {
        let g = dir.join(format!("g-{storage}.fkg"));
        let mut a = vec!["embed", "--storage", storage, "--out", s(&g)];
        let paths: Vec<PathBuf> = people.iter().map(|p| faces(p)).collect();
        a.extend(paths.iter().map(|p| s(p)));
        assert_eq!(facekit(&a).status.code(), Some(0));
        let out = dir.join(format!("hits-{storage}.json"));
        let o = facekit(&[
            "--json",
            "search",
            "--gallery",
            s(&g),
            s(&faces("obama3.jpg")),
            "-k",
            "3",
            "--out",
            s(&out),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let j = json_of(&o);
        let hits = j["results"][0]["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 3);
        assert!(
            hits[0]["id"].as_str().unwrap().contains("obama"),
            "{storage}: {hits:?}"
        );
        assert!(
            hits[1]["id"].as_str().unwrap().contains("obama"),
            "{storage}: {hits:?}"
        );
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(written, j);
    }
    // Flip layout for IJB: 1024 values a row, raw.
    let flip = dir.join("flip.fkg");
    let o = facekit(&[
        "--json",
        "embed",
        "--flip",
        "--out",
        s(&flip),
        s(&faces("obama.jpg")),
    ]);
    assert_eq!(json_of(&o)["dim"], 1024);
    // Mismatched dimensions are refused.
    let o = facekit(&["search", "--gallery", s(&gallery), "--query-embeddings", s(&flip)]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("1024-d") && stderr(&o).contains("512-d"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_pairs_on_the_bundled_faces_writes_report_and_pictures() {
    let dir = tmp("eval");
    let o = facekit(&[
        "--json",
        "eval",
        "pairs",
        "--pairs",
        s(&faces("pairs.tsv")),
        "--images",
        s(&repo().join("data/faces")),
        "--out",
        s(&dir),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    let overall = &j["report"]["overall"];
    assert_eq!(overall["n_genuine"], 10);
    assert_eq!(overall["n_impostor"], 18);
    // The teacher on the bundled faces: every genuine pair above every impostor. Before the
    // detector's padded pass for faces that fill their frame (obama_partial_face*.jpg,
    // Tom_Hanks_54745.png) the AUC was 73/90 = 0.811.
    assert_eq!(overall["auc"], 1.0, "{overall}");
    assert_eq!(j["failure_to_enrol"]["failed"].as_array().map(Vec::len), Some(0));
    for f in ["report.json", "scores.tsv", "roc.svg", "det.svg"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let tsv = std::fs::read_to_string(dir.join("scores.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 1 + 28);
    assert_eq!(tsv.lines().next(), Some("a\tb\tgroup\tlabel\tscore\tmissing"));
    // Identification on the same faces: obama's 4 probes against 4 enrolled people.
    let labels = dir.join("labels.csv");
    std::fs::write(
        &labels,
        "id,identity\nobama.jpg,obama\nobama2.jpg,obama\nobama3.jpg,obama\nbiden.jpg,biden\nastronaut.png,collins\n",
    )
    .unwrap();
    let g = dir.join("few.fkg");
    let o = facekit(&[
        "embed",
        "--out",
        s(&g),
        s(&faces("obama.jpg")),
        s(&faces("biden.jpg")),
        s(&faces("astronaut.png")),
        s(&faces("obama2.jpg")),
        s(&faces("obama3.jpg")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // ids are the paths as given; relabel them by file name through a label file keyed by path.
    let keyed: String = std::iter::once("id,identity".to_owned())
        .chain(
            [
                ("obama.jpg", "obama"),
                ("biden.jpg", "biden"),
                ("astronaut.png", "collins"),
                ("obama2.jpg", "obama"),
                ("obama3.jpg", "obama"),
            ]
            .iter()
            .map(|(f, who)| format!("{},{who}", s(&faces(f)))),
        )
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&labels, keyed).unwrap();
    let o = facekit(&[
        "--json",
        "eval",
        "identify",
        "--embeddings",
        s(&g),
        "--labels",
        s(&labels),
        "--out",
        s(&dir.join("id")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = &json_of(&o)["report"];
    assert_eq!((r["gallery"].as_u64(), r["probes"].as_u64()), (Some(3), Some(2)));
    assert_eq!(r["top_n"][0][1], 1.0, "{r}");
    // Identification from a folder with a faceless image of obama: under reject it is a probe
    // never identified (top-1 over 3), under skip it is left out (over 2).
    let people = bundled_faces(
        &dir.join("people/obama"),
        &["obama.jpg", "obama2.jpg", "obama3.jpg"],
    );
    std::fs::create_dir_all(dir.join("people/biden")).unwrap();
    std::fs::copy(faces("biden.jpg"), dir.join("people/biden/biden.jpg")).unwrap();
    image::RgbImage::from_pixel(120, 120, image::Rgb([90, 90, 90]))
        .save(people.join("wall.png"))
        .unwrap();
    for (missing, accuracy, rejected) in [("reject", 2.0 / 3.0, 1), ("skip", 1.0, 0)] {
        let o = facekit(&[
            "--json",
            "eval",
            "identify",
            "--images",
            s(&dir.join("people")),
            "--missing",
            missing,
            "--out",
            s(&dir.join(format!("id-{missing}"))),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let j = json_of(&o);
        let r = &j["report"];
        assert_eq!(
            (r["probes"].as_u64(), r["rejected"].as_u64()),
            (Some(2), Some(rejected)),
            "{r}"
        );
        assert!(
            (r["top_n"][0][1].as_f64().unwrap() - accuracy).abs() < 1e-12,
            "{r}"
        );
        assert_eq!(j["failure_to_enrol"]["failed"][0]["id"], "obama/wall.png");
    }
    // A protocol naming an image the embeddings lack.
    let o = facekit(&[
        "eval",
        "pairs",
        "--pairs",
        s(&faces("pairs.tsv")),
        "--embeddings",
        s(&g),
        "--out",
        s(&dir.join("x")),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("nothing to evaluate"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A faceless image, an unreadable one, and a group with impostor pairs only: `--missing
/// reject|skip|fail`, the FTE record, the one-class group, scores.tsv.
#[test]
fn eval_survives_failures_to_enrol_and_one_class_groups() {
    let dir = tmp("fte");
    let images = bundled_faces(
        &dir.join("images"),
        &["obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"],
    );
    image::RgbImage::from_pixel(160, 160, image::Rgb([128, 128, 128]))
        .save(images.join("blank.png"))
        .unwrap();
    std::fs::write(images.join("broken.jpg"), b"not a jpeg").unwrap();
    let pairs = dir.join("pairs.tsv");
    std::fs::write(
        &pairs,
        "# facekit pairs v1\ngroup\tlabel\tpath_a\tpath_b\n\
         real\t1\tobama.jpg\tobama2.jpg\n\
         real\t0\tobama.jpg\tbiden.jpg\n\
         real\t0\tobama2.jpg\tastronaut.png\n\
         real\t1\tobama.jpg\tblank.png\n\
         cross\t0\tbiden.jpg\tbroken.jpg\n\
         cross\t0\tastronaut.png\tobama2.jpg\n",
    )
    .unwrap();
    let run = |missing: &str, out: &str| {
        facekit(&[
            "--json",
            "eval",
            "pairs",
            "--pairs",
            s(&pairs),
            "--images",
            s(&images),
            "--missing",
            missing,
            "--far",
            "0.3",
            "--out",
            s(&dir.join(out)),
        ])
    };
    // reject (the default): both failures listed with their reasons; the genuine pair with the
    // faceless side is a non-match, so TAR is at most 1/2; the impostor-only group has an FMR.
    let o = run("reject", "reject");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    let fte = &j["failure_to_enrol"];
    let failed: Vec<(&str, &str)> = fte["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(failed.len(), 2, "{fte}");
    assert!(failed.contains(&("blank.png", "no face found")), "{failed:?}");
    assert!(failed.iter().any(|(id, _)| *id == "broken.jpg"), "{failed:?}");
    assert_eq!(
        (
            fte["images"].as_u64(),
            fte["affected"].as_u64(),
            fte["rejected"].as_u64()
        ),
        (Some(6), Some(2), Some(2))
    );
    assert!((fte["rate"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-12);
    let r = &j["report"];
    assert_eq!(
        (
            r["overall"]["n_genuine"].as_u64(),
            r["overall"]["n_impostor"].as_u64()
        ),
        (Some(2), Some(4))
    );
    let cross = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "cross")
        .unwrap();
    assert!(cross["auc"].is_null() && cross["fnmr"].is_null(), "{cross}");
    // At the EER threshold (0.0179, the astronaut/obama impostor score itself) that impostor
    // matches; at the FAR-0.3 threshold (0.708, the genuine obama score) none does.
    assert_eq!(
        (cross["fmr"].as_f64(), cross["fmr_at_far"].as_f64()),
        (Some(0.5), Some(0.0)),
        "{cross}"
    );
    let real = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "real")
        .unwrap();
    assert_eq!(
        (real["fnmr"].as_f64(), real["fnmr_at_far"].as_f64()),
        (Some(0.5), Some(0.5)),
        "the rejected genuine pair is a false non-match at every threshold: {real}"
    );
    let tsv = std::fs::read_to_string(dir.join("reject/scores.tsv")).unwrap();
    let rows: Vec<&str> = tsv.lines().collect();
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[4], "obama.jpg\tblank.png\treal\t1\t\tb");
    assert_eq!(rows[5], "biden.jpg\tbroken.jpg\tcross\t0\t\tb");
    assert!(String::from_utf8_lossy(
        &facekit(&[
            "eval",
            "pairs",
            "--pairs",
            s(&pairs),
            "--images",
            s(&images),
            "--out",
            s(&dir.join("h"))
        ])
        .stdout
    )
    .contains("blank.png: no face found"));

    // skip: the two pairs are left out and counted.
    let o = run("skip", "skip");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["failure_to_enrol"]["skipped"], 2);
    let overall = &j["report"]["overall"];
    assert_eq!(
        (overall["n_genuine"].as_u64(), overall["n_impostor"].as_u64()),
        (Some(1), Some(3))
    );

    // fail: today's behaviour, naming the image and its reason.
    let o = run("fail", "fail");
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("blank.png: no face found"), "{}", stderr(&o));
    assert!(!dir.join("fail/report.json").exists());
    // Bad values: a policy that does not exist (clap), a FAR outside (0, 1), a malformed list.
    assert_eq!(run("drop", "x").status.code(), Some(2));
    let o = facekit(&[
        "eval",
        "pairs",
        "--pairs",
        s(&pairs),
        "--images",
        s(&images),
        "--far",
        "2",
        "--out",
        s(&dir.join("x")),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--far 2"), "{}", stderr(&o));
    std::fs::write(
        &pairs,
        "# facekit pairs v1\ngroup\tlabel\tpath_a\tpath_b\nreal\tmaybe\ta.jpg\tb.jpg\n",
    )
    .unwrap();
    let o = run("reject", "x");
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("pairs.tsv:3: label"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn detect_finds_the_group_photo_faces() {
    let dir = tmp("detect");
    let out = dir.join("d.json");
    let o = facekit(&[
        "--json",
        "detect",
        s(&faces("t1.jpg")),
        s(&faces("obama.jpg")),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(d["images"][0]["faces"].as_array().unwrap().len(), 8);
    // obama.jpg: his face, plus a small false positive facenet-pytorch finds too.
    let obama = d["images"][1]["faces"].as_array().unwrap();
    assert!(!obama.is_empty());
    assert_eq!(
        d["images"][1]["faces"][0]["landmarks"].as_array().unwrap().len(),
        5
    );
    let o = facekit(&[
        "--json",
        "align",
        s(&faces("t1.jpg")),
        "--all",
        "--out",
        s(&dir.join("crops")),
    ]);
    assert_eq!(json_of(&o)["crops"], 8);
    let crop = image::open(
        dir.join("crops/").join(
            std::fs::read_dir(dir.join("crops"))
                .unwrap()
                .filter_map(|e| e.ok())
                .find(|e| e.path().extension().is_some_and(|x| x == "png"))
                .unwrap()
                .file_name(),
        ),
    )
    .unwrap();
    assert_eq!((crop.width(), crop.height()), (112, 112));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oversample_and_lexicon() {
    let dir = tmp("tables");
    let table = dir.join("labels.csv");
    let mut csv = String::from("id,gender,glasses\n");
    for i in 0..20 {
        csv.push_str(&format!(
            "img{i},{},{}\n",
            if i < 16 { "m" } else { "f" },
            if i % 10 == 0 { "yes" } else { "no" }
        ));
    }
    std::fs::write(&table, csv).unwrap();
    let out = dir.join("balanced.csv");
    let o = facekit(&[
        "--json",
        "oversample",
        "--labels",
        s(&table),
        "--out",
        s(&out),
        "--target-mean-ir",
        "1.5",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    let added = j["added"].as_u64().unwrap() as usize;
    assert!(added > 0);
    assert!(j["mean_ir_after"].as_f64().unwrap() < j["mean_ir_before"].as_f64().unwrap());
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 1 + 20 + added);
    // A row with the wrong field count is named by line.
    std::fs::write(&table, "id,gender\na,m\nb\n").unwrap();
    let o = facekit(&["oversample", "--labels", s(&table), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("labels.csv:3"), "{}", stderr(&o));

    let fixture = repo().join("crates/face-data/tests/fixtures/captions");
    let o = facekit(&[
        "--json",
        "lexicon",
        s(&fixture.join("captions.csv")),
        "--names",
        s(&fixture.join("names.txt")),
        "--out",
        s(&dir.join("lex")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.join("lex/report.json").is_file());
    assert!(json_of(&o)["report"].is_object());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `eval ijbc` on an IJB-shaped root made from face-eval's reference protocol: the CLI's
/// AUC and TAR table come from the same aggregation the library test checks against
/// insightface's numpy code, with the ablation switches passed through.
#[test]
fn eval_ijbc_reads_meta_and_npy_features() {
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("crates/face-eval/tests/fixtures/ijb.json")).unwrap(),
    )
    .unwrap();
    let dir = tmp("ijbc");
    let meta = dir.join("root/meta");
    std::fs::create_dir_all(&meta).unwrap();
    let faces = fx["faces"].as_array().unwrap();
    let mut tid = String::new();
    let mut pts = String::new();
    for (f, s) in faces.iter().zip(fx["faceness"].as_array().unwrap()) {
        let image = f["image"].as_str().unwrap();
        tid.push_str(&format!("{image} {} {}\n", f["template"], f["media"]));
        pts.push_str(&format!(
            "{image} 38.3 51.7 73.5 51.5 56.0 71.7 41.5 92.4 70.7 92.2 {}\n",
            s
        ));
    }
    let pairs: String = fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {} {}\n", p[0], p[1], p[2]))
        .collect();
    std::fs::write(meta.join("ijbc_face_tid_mid.txt"), tid).unwrap();
    std::fs::write(meta.join("ijbc_name_5pts_score.txt"), pts).unwrap();
    std::fs::write(meta.join("ijbc_template_pair_label.txt"), pairs).unwrap();
    let dim = fx["dim"].as_u64().unwrap() as usize;
    let feats: Vec<f32> = fx["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let npy = dir.join("feats.npy");
    face_eval_npy(&npy, faces.len(), 2 * dim, &feats);
    let (root, out) = (dir.join("root"), dir.join("out"));
    let run = |extra: &[&str]| {
        let mut a = vec![
            "--json",
            "eval",
            "ijbc",
            "--root",
            s(&root),
            "--features",
            s(&npy),
            "--out",
            s(&out),
        ];
        a.extend_from_slice(extra);
        facekit(&a)
    };
    let o = run(&["--flipped-halves"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["report"]["name"], "IJB-C N1D1F1");
    assert_eq!(
        j["report"]["n_genuine"].as_u64().unwrap() + j["report"]["n_impostor"].as_u64().unwrap(),
        50
    );
    // AUC from the reference scores (N1D1F1 is the first case of the fixture).
    let want: Vec<f64> = fx["cases"][0]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let labels: Vec<bool> = fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[2] == 1)
        .collect();
    let (mut wins, mut total) = (0.0, 0.0);
    for (a, la) in want.iter().zip(&labels) {
        for (b, lb) in want.iter().zip(&labels) {
            if *la && !*lb {
                total += 1.0;
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    assert!((j["report"]["auc"].as_f64().unwrap() - wins / total).abs() < 1e-9);
    for f in ["report.json", "roc.svg", "det.svg"] {
        assert!(dir.join("out").join(f).is_file());
    }
    let o = run(&[
        "--flipped-halves",
        "--no-norm",
        "--no-detector-score",
        "--no-flip",
    ]);
    assert_eq!(json_of(&o)["report"]["name"], "IJB-C N0D0F0");
    // Flip test without flipped halves is refused with a hint.
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--flip"), "{}", stderr(&o));

    // Per-pair scores: scores.npy in pair-file order, and the pairs beside it.
    let o = run(&["--flipped-halves"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (n, one, scores) = face_eval::read_npy_f32(&out.join("scores.npy")).unwrap();
    assert_eq!((n, one), (50, 1));
    for (ours, theirs) in scores.iter().zip(&want) {
        assert!((f64::from(*ours) - theirs).abs() < 1e-5, "{ours} vs {theirs}");
    }
    let ids = std::fs::read(out.join("scores_pairs.npy")).unwrap();
    let first_a = i64::from_le_bytes(
        ids[ids.len() - 50 * 24..ids.len() - 50 * 24 + 8]
            .try_into()
            .unwrap(),
    );
    assert_eq!(Some(first_a), fx["pairs"][0][0].as_i64());

    // Template of the first face loses every image (zero feature rows): a failure to enrol.
    let lost = faces[0]["template"].as_u64().unwrap();
    let rows: Vec<usize> = (0..faces.len())
        .filter(|&i| faces[i]["template"].as_u64() == Some(lost))
        .collect();
    let mut zeroed = feats.clone();
    for &i in &rows {
        zeroed[i * 2 * dim..(i + 1) * 2 * dim].fill(0.0);
    }
    face_eval_npy(&npy, faces.len(), 2 * dim, &zeroed);
    let affected = fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0].as_u64() == Some(lost) || p[1].as_u64() == Some(lost))
        .count();
    assert!(affected > 0);
    let o = run(&["--flipped-halves"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    let fte = &j["failure_to_enrol"];
    assert_eq!(fte["failed"].as_array().unwrap().len(), rows.len(), "{fte}");
    assert_eq!(
        (fte["affected"].as_u64(), fte["rejected"].as_u64()),
        (Some(affected as u64), Some(affected as u64))
    );
    assert_eq!(
        j["report"]["n_genuine"].as_u64().unwrap() + j["report"]["n_impostor"].as_u64().unwrap(),
        50
    );
    let (_, _, scores) = face_eval::read_npy_f32(&out.join("scores.npy")).unwrap();
    assert_eq!(scores.iter().filter(|v| v.is_nan()).count(), affected);
    let o = run(&["--flipped-halves", "--missing", "skip"]);
    let j = json_of(&o);
    assert_eq!(
        j["report"]["n_genuine"].as_u64().unwrap() + j["report"]["n_impostor"].as_u64().unwrap(),
        (50 - affected) as u64
    );
    let o = run(&["--flipped-halves", "--missing", "fail"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("zero or non-finite feature row"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tiny `<f4` .npy writer (the library's is face-eval's; the program's tests only run it).
fn face_eval_npy(path: &Path, rows: usize, cols: usize, data: &[f32]) {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

/// `eval ijbc` embedding `loose_crop/` itself (teacher, flip test) from the meta file's
/// landmarks: obama in two templates is the only genuine pair and must score highest.
#[test]
fn eval_ijbc_embeds_loose_crops_with_the_model() {
    let dir = tmp("ijbc-model");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("meta")).unwrap();
    std::fs::create_dir_all(root.join("loose_crop")).unwrap();
    let images = [
        "obama.jpg",
        "obama2.jpg",
        "biden.jpg",
        "astronaut.png",
        "obama3.jpg",
    ];
    let det = dir.join("det.json");
    let mut args = vec!["detect".to_owned(), "--out".into(), s(&det).into()];
    args.extend(images.iter().map(|i| s(&faces(i)).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(facekit(&refs).status.code(), Some(0));
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&det).unwrap()).unwrap();
    // Templates: 1 = obama (two media), 2 = biden, 3 = collins, 4 = obama again.
    let (template, media) = ([1, 1, 2, 3, 4], [10, 11, 20, 30, 40]);
    let (mut tid, mut pts) = (String::new(), String::new());
    for (k, name) in images.iter().enumerate() {
        std::fs::copy(faces(name), root.join("loose_crop").join(name)).unwrap();
        tid.push_str(&format!("{name} {} {}\n", template[k], media[k]));
        let face = &d["images"][k]["faces"][0];
        let lm: Vec<String> = face["landmarks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| [p[0].to_string(), p[1].to_string()])
            .collect();
        pts.push_str(&format!("{name} {} {}\n", lm.join(" "), face["score"]));
    }
    std::fs::write(root.join("meta/ijbc_face_tid_mid.txt"), tid).unwrap();
    std::fs::write(root.join("meta/ijbc_name_5pts_score.txt"), pts).unwrap();
    std::fs::write(
        root.join("meta/ijbc_template_pair_label.txt"),
        "1 2 0\n1 3 0\n2 3 0\n1 4 1\n2 4 0\n3 4 0\n",
    )
    .unwrap();
    let o = facekit(&[
        "--json",
        "eval",
        "ijbc",
        "--root",
        s(&root),
        "--out",
        s(&dir.join("out")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = &json_of(&o)["report"];
    assert_eq!(r["name"], "IJB-C N1D1F1");
    assert_eq!(
        (r["n_genuine"].as_u64(), r["n_impostor"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(r["auc"], 1.0, "{r}");
    // An unreadable image is a failure to enrol, not an abort: collins' only template is lost,
    // and its 3 pairs are rejected (impostors, so still correct rejections).
    std::fs::write(root.join("loose_crop/astronaut.png"), b"not a png").unwrap();
    let o = facekit(&[
        "--json",
        "eval",
        "ijbc",
        "--root",
        s(&root),
        "--out",
        s(&dir.join("out2")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    let fte = &j["failure_to_enrol"];
    assert_eq!(fte["failed"][0]["id"], "astronaut.png", "{fte}");
    assert_eq!(
        (fte["images"].as_u64(), fte["affected"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(
        (j["report"]["n_impostor"].as_u64(), j["report"]["auc"].as_f64()),
        (Some(5), Some(1.0))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pretrain_lafs_on_four_faces_writes_the_run() {
    let dir = tmp("pretrain");
    let images = bundled_faces(
        &dir.join("images"),
        &["obama.jpg", "obama2.jpg", "biden.jpg", "Tom_Hanks_54745.png"],
    );
    let labels = dir.join("labels.csv");
    std::fs::write(
        &labels,
        "obama.jpg,obama\nobama2.jpg,obama\nbiden.jpg,biden\nTom_Hanks_54745.png,hanks\n",
    )
    .unwrap();
    let out = dir.join("run");
    let tiny_run = |extra: &[&str]| {
        let mut args = vec![
            "pretrain",
            "--images",
            s(&images),
            "--out",
            s(&out),
            "--preset",
            "tiny",
            "--set",
            "optim.epochs=3",
            "--json",
        ];
        args.extend_from_slice(extra);
        facekit(&args)
    };
    let o = tiny_run(&["--labels", s(&labels)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert!(j["faces"].as_u64().unwrap() >= 4, "{j}");
    assert_eq!(j["history"].as_array().unwrap().len(), 3);
    assert!(j["history"][2]["monitors"]["loss"].as_f64().unwrap().is_finite());
    assert_eq!(j["one_shot"]["identities"], 3);
    assert_eq!(j["one_shot"]["probes"], 1);
    for f in [
        "config.json",
        "backbone.bin",
        "head.bin",
        "history.json",
        "monitors.svg",
        "one_shot.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["views"]["tokenizer"], "landmarks");
    assert_eq!(config["optim"]["epochs"], 3);
    // The pretrained backbone is a face-nets backbone folder: the dense 7×7 landmark tokens.
    let backbone: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("backbone.json")).unwrap()).unwrap();
    assert_eq!(backbone["arch"], "token_vit");
    assert_eq!(backbone["input"]["layout"]["dense"]["n"], 7);
    // A rerun resumes from the last checkpoint and changes nothing.
    let again = tiny_run(&[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let again = json_of(&again);
    assert!(
        again["resumed_from"]
            .as_str()
            .is_some_and(|p| p.contains("step-")),
        "{again}"
    );
    assert_eq!(again["history"], j["history"]);

    // A student distilled from the pretrained backbone (`--init`): it has the token ViT's
    // architecture, and the run folder is a model folder the embedding commands read.
    let distilled = dir.join("from-lafs");
    let o = facekit(&[
        "distill",
        "--images",
        s(&images),
        "--out",
        s(&distilled),
        "--labels",
        s(&labels),
        "--init",
        s(&out),
        "--set",
        "train.epochs=1",
        "--device",
        "cpu",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = json_of(&o);
    assert_eq!(d["backbone"], "token_vit");
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(distilled.join("run/model.json")).unwrap()).unwrap();
    assert_eq!(model["backbone"]["arch"], "token_vit");
    assert_eq!(model["embedding_dim"], 512);
    let o = facekit(&[
        "verify",
        s(&images.join("obama.jpg")),
        s(&images.join("obama2.jpg")),
        "--model",
        s(&distilled.join("run")),
        "--threshold",
        "0.0",
        "--json",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    assert!(json_of(&o)["score"].as_f64().is_some_and(f64::is_finite));
    // A config file with a misspelt key deep inside the student's backbone: exit 3, named.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"student": {"backbone": {"arch": "iresnet", "layers": [1, 1, 1, 1], "base_widht": 8}}}"#,
    )
    .unwrap();
    let o = facekit(&[
        "distill",
        "--images",
        s(&images),
        "--out",
        s(&distilled),
        "--config",
        s(&bad),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("student.backbone.base_widht"),
        "{}",
        stderr(&o)
    );

    // Bad input: an unknown method or key (exit 3), CUDA on a build or machine without it (exit 4).
    let o = facekit(&[
        "pretrain",
        "--images",
        s(&images),
        "--out",
        s(&out),
        "--method",
        "sideways",
    ]);
    // `--method` is a typed value: clap refuses an unknown one as a bad command line (exit 2).
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("sideways"));
    let o = facekit(&[
        "pretrain",
        "--images",
        s(&images),
        "--out",
        s(&out),
        "--set",
        "optim.epoch=1",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("optim.epoch"));
    if !Path::new("/dev/nvidia0").exists() {
        let o = facekit(&[
            "pretrain",
            "--images",
            s(&images),
            "--out",
            s(&out),
            "--preset",
            "tiny",
            "--device",
            "cuda",
        ]);
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        // Teaching and distilling on CUDA are refused before any face is cut or taught.
        for command in ["teach", "distill"] {
            let out = dir.join(format!("{command}-cuda"));
            let o = facekit(&[
                command,
                "--images",
                s(&images),
                "--out",
                s(&out),
                "--device",
                "cuda",
            ]);
            assert_eq!(o.status.code(), Some(4), "{command}: {}", stderr(&o));
            let e = stderr(&o);
            assert!(e.contains("CUDA") || e.contains("GPU"), "{command}: {e}");
            assert!(
                !out.join("faces").exists(),
                "{command} cut faces before refusing CUDA"
            );
        }
    }
    let o = facekit(&[
        "teach",
        "--images",
        s(&images),
        "--out",
        s(&out),
        "--device",
        "cuda:0,1",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("one GPU"), "{}", stderr(&o));
}

/// `eval lfw` from an .npy matrix that lacks one image (in one genuine and one impostor pair of
/// fold 2): reject keeps all 8 pairs (the genuine one is a non-match, the impostor a correct
/// rejection), skip drops both, fail stops; scores.tsv marks them.
#[test]
fn eval_lfw_with_an_image_missing_from_the_embeddings() {
    let dir = tmp("lfw");
    // 2 folds of 2 matched + 2 mismatched pairs over people a…d (images 1 and 2 each).
    let pairs = dir.join("pairs.txt");
    std::fs::write(
        &pairs,
        "2\t2\na\t1\t2\nb\t1\t2\na\t1\tc\t1\nb\t2\td\t1\nc\t1\t2\nd\t1\t2\nc\t2\ta\t2\nd\t2\tb\t1\n",
    )
    .unwrap();
    // Unit vectors: person k at angle k·40°, image 2 tilted by 5°. d_0002 is missing.
    let mut ids = Vec::new();
    let mut data = Vec::new();
    for (k, who) in ["a", "b", "c", "d"].iter().enumerate() {
        for n in 1..=2 {
            if (*who, n) == ("d", 2) {
                continue;
            }
            let t = (40.0 * k as f32 + 5.0 * (n - 1) as f32).to_radians();
            ids.push(format!("{who}/{who}_{n:04}.jpg"));
            data.extend([t.cos(), t.sin()]);
        }
    }
    let npy = dir.join("e.npy");
    face_eval_npy(&npy, ids.len(), 2, &data);
    let ids_file = dir.join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n") + "\n").unwrap();
    let run = |missing: &str| {
        let out = dir.join(missing);
        let o = facekit(&[
            "--json",
            "eval",
            "lfw",
            "--pairs",
            s(&pairs),
            "--embeddings",
            s(&npy),
            "--ids",
            s(&ids_file),
            "--missing",
            missing,
            "--far",
            "0.5",
            "--out",
            s(&out),
        ]);
        (o, out)
    };
    let (o, out) = run("reject");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["failure_to_enrol"]["failed"][0]["id"], "d/d_0002.jpg");
    assert_eq!(j["failure_to_enrol"]["rejected"], 2);
    let tsv = std::fs::read_to_string(out.join("scores.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 1 + 8);
    assert!(tsv.contains("d/d_0001.jpg\td/d_0002.jpg\t\t1\t\tb"), "{tsv}");
    // Fold 2 holds the missing pair: its accuracy is 3/4 under reject.
    assert_eq!(j["report"]["folds"][1]["accuracy"], 0.75, "{}", j["report"]);
    let (o, _) = run("skip");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["failure_to_enrol"]["skipped"], 2);
    assert_eq!(j["report"]["folds"][1]["accuracy"], 1.0, "{}", j["report"]);
    let (o, _) = run("fail");
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("d/d_0002.jpg"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `eval celeba-attr` with an image missing from the embeddings: under reject its genuine pair
/// stays in the table and fails at every threshold (even a negative one); skip drops it.
#[test]
fn eval_celeba_attr_with_an_image_missing_from_the_embeddings() {
    let dir = tmp("celeba");
    let attrs = dir.join("list_attr_celeba.txt");
    std::fs::write(
        &attrs,
        "4\nSmiling Eyeglasses\n000001.jpg 1 -1\n000002.jpg 1 -1\n000003.jpg 1 1\n000004.jpg 1 1\n",
    )
    .unwrap();
    let pairs = dir.join("pairs.tsv");
    std::fs::write(
        &pairs,
        "# facekit pairs v1\ngroup\tlabel\tpath_a\tpath_b\n\
         \t1\t000001.jpg\t000002.jpg\n\
         \t1\t000003.jpg\t000004.jpg\n\
         \t0\t000001.jpg\t000003.jpg\n",
    )
    .unwrap();
    // 000004 has no embedding; 1 and 2 are one person, 3 another.
    let ids = dir.join("ids.txt");
    std::fs::write(&ids, "000001.jpg\n000002.jpg\n000003.jpg\n").unwrap();
    let npy = dir.join("e.npy");
    face_eval_npy(&npy, 3, 2, &[1.0, 0.0, 0.96, 0.28, 0.0, 1.0]);
    let run = |missing: &str| {
        facekit(&[
            "--json",
            "eval",
            "celeba-attr",
            "--attributes",
            s(&attrs),
            "--pairs",
            s(&pairs),
            "--embeddings",
            s(&npy),
            "--ids",
            s(&ids),
            "--thresholds=-0.5,0.5",
            "--missing",
            missing,
            "--out",
            s(&dir.join(missing)),
        ])
    };
    let o = run("reject");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["failure_to_enrol"]["failed"][0]["id"], "000004.jpg");
    let all = &j["table"][0];
    assert_eq!(all["pairs"], 3, "{all}");
    // At −0.5 the impostor (cosine 0) is accepted, the rejected genuine pair is not: 1 of 3.
    // At 0.5: the real genuine pair passes, the impostor fails, the rejected one fails: 2 of 3.
    let acc: Vec<f64> = all["accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[1].as_f64().unwrap())
        .collect();
    assert!(
        (acc[0] - 1.0 / 3.0).abs() < 1e-12 && (acc[1] - 2.0 / 3.0).abs() < 1e-12,
        "{acc:?}"
    );
    let o = run("skip");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_of(&o)["table"][0]["pairs"], 2);
    assert_eq!(run("fail").status.code(), Some(3));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file's SHA-256 (what a teacher spec names).
fn sha256(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A teacher spec for the MobileFaceNet fixture face-nets exports with torch.onnx
/// (crates/face-nets/tests/fixtures/onnx/mbf_small.onnx: random weights, a 64-d embedding).
fn mbf_spec(dir: &Path) -> PathBuf {
    let onnx = repo().join("crates/face-nets/tests/fixtures/onnx/mbf_small.onnx");
    let sha = sha256(&onnx);
    let spec = serde_json::json!({"identity": {
        "model": {"onnx": {"file": onnx, "sha256": sha}},
        "input": {"size": 112, "template": "arcface", "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5], "channels": "rgb"},
        "output": {"name": "embedding"}
    }});
    let path = dir.join("mbf.teacher.json");
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    path
}

#[test]
fn teacher_specs_drive_teach_verify_and_embed() {
    let dir = tmp("specs");
    let spec = mbf_spec(&dir);
    // Any model a spec describes verifies; it has no bundled calibration, so it needs a threshold.
    let o = facekit(&[
        "verify",
        s(&faces("obama.jpg")),
        s(&faces("obama2.jpg")),
        "--model",
        s(&spec),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs --threshold"), "{}", stderr(&o));
    let o = facekit(&[
        "verify",
        s(&faces("obama.jpg")),
        s(&faces("obama2.jpg")),
        "--model",
        s(&spec),
        "--threshold",
        "0.5",
        "--json",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let j = json_of(&o);
    assert!(
        j["model"].as_str().unwrap().starts_with("spec:mbf_small.onnx:"),
        "{j}"
    );
    assert!(j["score"].as_f64().unwrap().abs() <= 1.0);

    // `teach` with that identity teacher and the bundled age/gender teacher.
    let images = bundled_faces(&dir.join("images"), &["obama.jpg", "biden.jpg"]);
    let out = dir.join("teach");
    let teach_with_spec = || {
        facekit(&[
            "teach",
            "--images",
            s(&images),
            "--out",
            s(&out),
            "--identity-teacher",
            s(&spec),
            "--json",
        ])
    };
    let o = teach_with_spec();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["images"], 2, "{j}");
    assert!(
        j["cached"].as_u64().unwrap() >= 2 && j["cached"] == j["faces"],
        "{j}"
    );
    let cached = j["cached"].clone();
    assert_eq!(j["embedding_dim"], 64);
    assert_eq!(j["age_bins"], 81);
    assert!(
        j["identity_teacher"]
            .as_str()
            .unwrap()
            .starts_with("spec:mbf_small.onnx:"),
        "{j}"
    );
    assert!(
        j["age_gender_teacher"]
            .as_str()
            .unwrap()
            .starts_with("spec:age-v1.onnx+gender-v1.onnx:"),
        "{j}"
    );
    // The same again resumes; other teachers on the same cache are refused, not mixed in.
    let o = teach_with_spec();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_of(&o)["resumed"], cached);
    let o = facekit(&["teach", "--images", s(&images), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("refusing to mix"), "{}", stderr(&o));

    // A bad spec is a clear error naming the file and the key.
    let bad = dir.join("bad.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    v["identity"]["input"]["mean_rgb"] = serde_json::json!([0, 0, 0]);
    std::fs::write(&bad, v.to_string()).unwrap();
    let o = facekit(&[
        "teach",
        "--images",
        s(&images),
        "--out",
        s(&dir.join("bad")),
        "--identity-teacher",
        s(&bad),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.json") && stderr(&o).contains("identity.input.mean_rgb"),
        "{}",
        stderr(&o)
    );
    let o = facekit(&[
        "embed",
        s(&images),
        "--out",
        s(&dir.join("g.fkg")),
        "--model",
        s(&bad),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("identity.input.mean_rgb"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_writes_torch_and_onnx_and_the_onnx_teaches() {
    use burn::backend::NdArray;
    use face_nets::{BackboneConfig, FaceModelConfig, IResNetConfig};
    let dir = tmp("export");
    let run = dir.join("out/run");
    let config = FaceModelConfig::new(
        BackboneConfig::IResNet(IResNetConfig::r18().with_base_width(8).with_num_features(32)),
        16,
        vec![10.0, 30.0, 50.0, 70.0],
    );
    let model = config.init::<NdArray>(&Default::default()).unwrap();
    model.save(&config, &run).unwrap();

    // The distill output folder finds its run/; PyTorch layout with its sidecar.
    let st = dir.join("student.safetensors");
    let o = facekit(&[
        "export",
        s(&dir.join("out")),
        "--format",
        "torch",
        "--out",
        s(&st),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(j["format"], "torch");
    assert_eq!(j["backbone"], "iresnet");
    assert!(st.is_file() && dir.join("student.safetensors.json").is_file());
    let (back_config, _) = face_nets::export::read_torch::<NdArray>(&st, &Default::default()).unwrap();
    assert_eq!(back_config, config);

    // ONNX: the four named outputs, and the exported student is itself a teacher through a spec.
    let onnx = dir.join("student.onnx");
    let o = facekit(&["export", s(&run), "--format", "onnx", "--out", s(&onnx)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("student.onnx (onnx"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let m = face_nets::onnx::OnnxModel::<NdArray>::load(&onnx, &Default::default()).unwrap();
    let names: Vec<&str> = m.outputs().iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["embedding", "age_probs", "expected_age", "p_male"]);
    let sha = sha256(&onnx);
    let spec = dir.join("student.teacher.json");
    let input = serde_json::json!({"size": 112, "template": "arcface", "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5], "channels": "rgb"});
    std::fs::write(
        &spec,
        serde_json::json!({"identity": {"model": {"onnx": {"file": "student.onnx", "sha256": sha}}, "input": input, "output": {"name": "embedding"}}})
            .to_string(),
    )
    .unwrap();
    let gallery = dir.join("g.fkg");
    let o = facekit(&[
        "embed",
        s(&faces("obama.jpg")),
        s(&faces("biden.jpg")),
        "--model",
        s(&spec),
        "--out",
        s(&gallery),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_of(&o)["dim"], 16, "{}", json_of(&o));
    // The same faces through the model folder give the same embeddings (the ONNX is the model).
    let g2 = dir.join("g2.fkg");
    let o = facekit(&[
        "embed",
        s(&faces("obama.jpg")),
        s(&faces("biden.jpg")),
        "--model",
        s(&run),
        "--out",
        s(&g2),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let a = face_search::Gallery::open(&gallery).unwrap();
    let b = face_search::Gallery::open(&g2).unwrap();
    assert_eq!(a.len(), 2);
    for i in 0..2 {
        let (x, y) = (a.row(i), b.row(i));
        let d = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-4, "row {i}: {d}");
    }

    // Bad input: no model here.
    let o = facekit(&[
        "export",
        s(&dir),
        "--format",
        "onnx",
        "--out",
        s(&dir.join("x.onnx")),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no model.json"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An insightface RecordIO set in `dir` of `n` aligned faces (Tom Hanks' 112 px ArcFace crop
/// under changing brightness and mirroring) and one 100 × 80 image, which is skipped.
fn aligned_recordio(dir: &Path, n: usize) -> PathBuf {
    use face_data::formats::recordio::{pack, RecordIoWriter};
    std::fs::create_dir_all(dir).unwrap();
    let hanks = face_data::read_rgb(&faces("Tom_Hanks_54745.png")).unwrap();
    let mut w = RecordIoWriter::create(&dir.join("train.rec"), &dir.join("train.idx")).unwrap();
    w.write(0, &pack(0, &[(n + 2) as f32, (n + 2) as f32], &[]))
        .unwrap();
    for k in 0..=n {
        let img = if k == n / 2 {
            image::RgbImage::from_pixel(100, 80, image::Rgb([90, 90, 90]))
        } else {
            let mut img = hanks.clone();
            if k % 2 == 1 {
                image::imageops::flip_horizontal_in_place(&mut img);
            }
            let gain = 0.7 + 0.6 * k as f32 / n as f32;
            img.pixels_mut()
                .for_each(|p| p.0 = p.0.map(|v| (f32::from(v) * gain).min(255.0) as u8));
            img
        };
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        w.write(k as u64 + 1, &pack(k as u64 + 1, &[(k % 3) as f32], &png))
            .unwrap();
    }
    w.finish().unwrap();
    dir.to_path_buf()
}

/// `teach --aligned` over a RecordIO set, killed (SIGKILL) three times at different points of
/// its journal, then run to the end: the cache is byte for byte the one an uninterrupted run
/// writes, nothing lost or repeated; `distill --aligned` then trains on it (streamed).
#[test]
fn teach_aligned_survives_kills_and_distill_streams() {
    let dir = tmp("teach-kill");
    let rec = aligned_recordio(&dir.join("rec"), 24);
    let teach = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "teach",
            "--aligned",
            s(&rec),
            "--out",
            s(out),
            "--batch",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let one_shot = dir.join("one-shot");
    let o = facekit(
        &teach(&one_shot, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(
        (j["faces"].as_u64(), j["cached"].as_u64(), j["skipped"].as_u64()),
        (Some(25), Some(24), Some(1)),
        "{j}"
    );
    assert_eq!(j["device"], "cpu", "{j}");
    let rate = j["images_per_s"].as_f64().unwrap_or(0.0);
    let seconds = j["seconds"].as_f64().unwrap_or(0.0);
    let processed = j["processed"].as_f64().unwrap_or(0.0);
    assert!(processed > 0.0 && seconds > 0.0, "{j}");
    assert!((rate * seconds - processed).abs() <= 1e-9 * processed, "{j}");
    let want = std::fs::read(one_shot.join("targets.safetensors")).unwrap();

    // Killed when its journal has passed 1, 5 and 9 records, then run to the end.
    let killed = dir.join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let journal = killed.join("targets.safetensors.journal");
    let record = 4 * (1 + 512 + 81 + 13) as u64;
    for records in [1u64, 5, 9] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_facekit"))
            .args(teach(&killed, &[]))
            .env("FACEKIT_MODELS", repo().join("models"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        loop {
            let len = std::fs::metadata(&journal).map_or(0, |m| m.len());
            if len > records * record {
                child.kill().unwrap();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                panic!("teach finished before it could be killed at {records} records");
            }
            assert!(start.elapsed().as_secs() < 120, "teach made no progress");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        child.wait().unwrap();
    }
    let o = facekit(&teach(&killed, &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert!(j["resumed"].as_u64().unwrap() >= 9, "{j}");
    assert_eq!(
        j["resumed"].as_u64().unwrap() + j["processed"].as_u64().unwrap(),
        25,
        "{j}"
    );
    assert_eq!(
        std::fs::read(killed.join("targets.safetensors")).unwrap(),
        want,
        "resumed cache differs"
    );
    assert!(!journal.exists());

    // Stopped by --max-new, then finished: the same file again.
    let stepwise = dir.join("stepwise");
    let o = facekit(
        &teach(&stepwise, &["--max-new", "7"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        (
            json_of(&o)["finished"].as_bool(),
            json_of(&o)["processed"].as_u64()
        ),
        (Some(false), Some(7))
    );
    let o = facekit(
        &teach(&stepwise, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(json_of(&o)["resumed"], 7);
    assert_eq!(std::fs::read(stepwise.join("targets.safetensors")).unwrap(), want);

    // Distil from it, streamed (`data.stream=on`): the cache is reused, the run trains.
    let o = facekit(&[
        "distill",
        "--aligned",
        s(&rec),
        "--out",
        s(&one_shot),
        "--set",
        "data.stream=on",
        "--set",
        "train.epochs=1",
        "--set",
        "data.batch=8",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json_of(&o);
    assert_eq!(
        (
            j["faces"].as_u64(),
            j["streamed"].as_bool(),
            j["steps_this_call"].as_u64()
        ),
        (Some(24), Some(true), Some(3)),
        "{j}"
    );

    // Bad input: a truncated set names the record; no input at all is refused.
    let bytes = std::fs::read(rec.join("train.rec")).unwrap();
    std::fs::write(rec.join("train.rec"), &bytes[..bytes.len() / 2]).unwrap();
    let o = facekit(
        &teach(&dir.join("cut"), &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("train.rec") && stderr(&o).contains("points past the end"),
        "{}",
        stderr(&o)
    );
    let o = facekit(&["teach", "--out", s(&dir.join("none"))]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Addresses on 127.0.0.1 for `N` peers, on free ports: the orchestrators', then each peer's.
fn free_ports<const N: usize>() -> (String, [String; N]) {
    let peers = face_distill::PeersConfig::loopback(N as u32, std::time::Duration::from_secs(1)).unwrap();
    let orchestrator = peers[0].orchestrator.clone();
    (orchestrator, std::array::from_fn(|i| peers[i].listen.clone()))
}

/// `distill --peers 2` as two processes on 127.0.0.1: they end with the same student (every
/// weight and statistic equal); a missing peer, a killed peer and bad settings each stop with an
/// error that says so, in bounded time.
#[test]
fn distill_on_two_peers() {
    let dir = tmp("peers");
    let rec = aligned_recordio(&dir.join("rec"), 16);
    let (p0, p1) = (dir.join("p0"), dir.join("p1"));
    // Teach once; each peer gets its own copy of the targets.
    let o = facekit(&[
        "teach",
        "--aligned",
        s(&rec),
        "--out",
        s(&p0),
        "--batch",
        "4",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::create_dir_all(&p1).unwrap();
    std::fs::copy(p0.join("targets.safetensors"), p1.join("targets.safetensors")).unwrap();

    let peer = |id: &str, out: &Path, orch: &str, listen: &str, extra: &[&str]| {
        let mut args: Vec<String> = [
            "distill",
            "--aligned",
            s(&rec),
            "--out",
            s(out),
            "--set",
            "data.batch=8",
            "--peers",
            "2",
            "--peer-id",
            id,
            "--orchestrator",
            orch,
            "--listen",
            listen,
            "--json",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        Command::new(env!("CARGO_BIN_EXE_facekit"))
            .args(args)
            .env("FACEKIT_MODELS", repo().join("models"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Waits for a peer at most `secs` seconds (then kills it and fails).
    let finish = |mut child: std::process::Child, secs: u64| {
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed().as_secs() > secs {
                let _ = child.kill();
                panic!("a peer did not stop within {secs} s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    };

    // Two peers train one epoch (2 steps of 8 faces, 4 each): the same student, byte for byte.
    let (orch, [l0, l1]) = free_ports();
    let one_epoch = ["--set", "train.epochs=1"];
    let a = peer("0", &p0, &orch, &l0, &one_epoch);
    let b = peer("1", &p1, &orch, &l1, &one_epoch);
    let (a, b) = (finish(a, 300), finish(b, 300));
    for o in [&a, &b] {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        let j = json_of(o);
        assert_eq!(
            (j["steps_this_call"].as_u64(), j["peers"]["count"].as_u64()),
            (Some(2), Some(2)),
            "{j}"
        );
    }
    // The same values (the files differ in their random parameter ids).
    let student = |p: &Path| {
        let (_, m) =
            face_nets::load_model::<burn::backend::NdArray>(&p.join("run"), &Default::default()).unwrap();
        face_nets::record::float_values(&m)
    };
    assert_eq!(student(&p0), student(&p1), "the peers' students differ");

    // Stopped after step 1 and started again, the peers resume from their checkpoints and end
    // with the student of the uninterrupted run, value for value.
    let (r0, r1) = (dir.join("r0"), dir.join("r1"));
    for r in [&r0, &r1] {
        std::fs::create_dir_all(r).unwrap();
        std::fs::copy(p0.join("targets.safetensors"), r.join("targets.safetensors")).unwrap();
    }
    // The second call has one step left of the epoch's two: it did resume.
    for max_steps in [&["--set", "train.max_steps=1"][..], &[][..]] {
        let mut extra = vec!["--set", "train.epochs=1", "--set", "train.checkpoint_every=1"];
        extra.extend_from_slice(max_steps);
        let (orch, [l0, l1]) = free_ports();
        let a = peer("0", &r0, &orch, &l0, &extra);
        let b = peer("1", &r1, &orch, &l1, &extra);
        for o in [finish(a, 300), finish(b, 300)] {
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            assert!(!stderr(&o).contains("Connecting to"), "{}", stderr(&o));
            assert_eq!(json_of(&o)["steps_this_call"].as_u64(), Some(1), "{}", stderr(&o));
        }
    }
    assert_eq!(student(&r0), student(&p0), "the resumed peers' student differs");
    assert_eq!(student(&r1), student(&p0), "the resumed peers' student differs");

    // A peer alone: its partner never comes, so it stops after --peer-timeout.
    let (orch, [l0]) = free_ports();
    let o = finish(
        peer("0", &dir.join("alone"), &orch, &l0, &["--peer-timeout", "3"]),
        120,
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("joining the other peers: no answer within 3 s")
            && stderr(&o).contains("expected 2 peers"),
        "{}",
        stderr(&o)
    );

    // Peer 1 killed mid-run: peer 0 stops with an error naming it; its last checkpoint stays.
    let (orch, [listen0, listen1]) = free_ports();
    let long = [
        "--set",
        "train.epochs=40",
        "--set",
        "train.checkpoint_every=1",
        "--peer-timeout",
        "10",
    ];
    let (k0, k1) = (dir.join("k0"), dir.join("k1"));
    for k in [&k0, &k1] {
        std::fs::create_dir_all(k).unwrap();
        std::fs::copy(p0.join("targets.safetensors"), k.join("targets.safetensors")).unwrap();
    }
    let a = peer("0", &k0, &orch, &listen0, &long);
    let mut b = peer("1", &k1, &orch, &listen1, &long);
    let start = std::time::Instant::now();
    while !k1.join("run/checkpoints/step-00000002").exists() {
        assert!(start.elapsed().as_secs() < 240, "the peers made no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    b.kill().unwrap();
    b.wait().unwrap();
    let o = finish(a, 120);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("peer 1 ({listen1})")),
        "{}",
        stderr(&o)
    );
    assert!(k0.join("run/checkpoints/step-00000002/state.json").exists());

    // Bad settings are refused before anything runs.
    let o = facekit(&[
        "distill",
        "--aligned",
        s(&rec),
        "--out",
        s(&p0),
        "--peers",
        "2",
        "--peer-id",
        "2",
        "--orchestrator",
        "127.0.0.1:9",
        "--listen",
        "127.0.0.1:10",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("--peer-id 2 with 2 peers"), "{}", stderr(&o));
    let o = facekit(&["distill", "--aligned", s(&rec), "--out", s(&p0), "--peers", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
