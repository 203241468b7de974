//! The teacher-target cache: contents, resuming after an interruption (no lost or repeated rows,
//! a torn journal line dropped), refusal to mix teachers, and bad files.

use std::path::Path;

use burn::backend::NdArray;
use burn::tensor::Tensor;
use face_data::{FaceSource, FileFaces, RecordIoFaces};
use face_detect::{Mtcnn, MtcnnConfig};
use face_teachers::cache::{journal_path, skipped_path};
use face_teachers::{
    build_cache, default_models_dir, BuildOptions, CacheFile, DlibAgeGenderTeacher, FrFeatureTeacher,
    IdentityTeacher, InputRecipe, LandmarkSource, Prepared, TargetCache, TeacherError,
};

type B = NdArray<f32>;

struct Setup {
    dir: tempfile::TempDir,
    identity: FrFeatureTeacher<B>,
    age_gender: DlibAgeGenderTeacher<B>,
    mtcnn: Mtcnn<B>,
}

/// Six inputs: four faces (downscaled copies of bundled photos, to keep the test fast), one
/// blank image and one corrupt file.
fn setup() -> Setup {
    let dev = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let faces = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/faces");
    for (name, scale) in [
        ("obama.jpg", 3),
        ("obama2.jpg", 2),
        ("biden.jpg", 3),
        ("Tom_Hanks_54745.png", 1),
    ] {
        let img = face_data::read_rgb(&faces.join(name)).unwrap();
        let small = image::imageops::resize(
            &img,
            img.width() / scale,
            img.height() / scale,
            image::imageops::FilterType::Triangle,
        );
        small.save(images.join(name.replace(".jpg", ".png"))).unwrap();
    }
    image::RgbImage::from_pixel(80, 60, image::Rgb([128, 128, 128]))
        .save(images.join("blank.png"))
        .unwrap();
    std::fs::write(images.join("corrupt.jpg"), b"not a jpeg at all").unwrap();
    let models = default_models_dir();
    Setup {
        identity: FrFeatureTeacher::load(&models, &dev).unwrap(),
        age_gender: DlibAgeGenderTeacher::load(&models, &dev).unwrap(),
        mtcnn: Mtcnn::load(&models, MtcnnConfig::default(), &dev).unwrap(),
        dir,
    }
}

impl Setup {
    fn items(&self) -> FileFaces {
        FileFaces::folder(&self.dir.path().join("images")).unwrap()
    }

    fn build(&self, out: &Path, options: &BuildOptions) -> face_teachers::Result<face_teachers::BuildReport> {
        build_cache(
            &self.identity,
            &self.age_gender,
            LandmarkSource::Detect(&self.mtcnn),
            &self.items(),
            out,
            options,
            &Default::default(),
        )
    }
}

#[test]
fn build_resume_and_refuse() {
    let s = setup();
    let items = s.items();
    assert_eq!(items.len(), 6);
    let one_shot = s.dir.path().join("one_shot.safetensors");
    let report = s.build(&one_shot, &BuildOptions::default()).unwrap();
    assert!(
        report.finished && report.processed == 6 && report.skipped == 2,
        "{report:?}"
    );
    assert!(!journal_path(&one_shot).exists());
    let a = TargetCache::read(&one_shot).unwrap();
    assert_eq!(
        a.ids,
        vec!["Tom_Hanks_54745.png", "biden.png", "obama.png", "obama2.png"]
    );
    let reasons: Vec<&str> = a
        .skipped
        .iter()
        .map(|(id, why)| {
            assert!(id == "blank.png" || id == "corrupt.jpg");
            why.as_str()
        })
        .collect();
    assert!(reasons.contains(&"no face detected"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("corrupt.jpg")), "{reasons:?}");
    // Unit embeddings; obama ≈ obama2 more than obama ≈ biden; all male; ages plausible.
    for i in 0..a.len() {
        let norm: f32 = a.embedding(i).iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        let probs: f32 = a.age_distribution(i).iter().sum();
        assert!((probs - 1.0).abs() < 1e-4);
        assert!(a.p_male[i] > 0.5, "{}: P(male) {}", a.ids[i], a.p_male[i]);
        assert!(
            (20.0..90.0).contains(&a.expected_age[i]),
            "{}: age {}",
            a.ids[i],
            a.expected_age[i]
        );
    }
    let dot = |i: usize, j: usize| -> f32 {
        a.embedding(i)
            .iter()
            .zip(a.embedding(j))
            .map(|(x, y)| x * y)
            .sum()
    };
    assert!(
        dot(2, 3) > dot(2, 1) + 0.2,
        "obama·obama2 {} vs obama·biden {}",
        dot(2, 3),
        dot(2, 1)
    );
    let t: Tensor<B, 2> = a.embeddings_tensor(&[3, 0], &Default::default());
    assert_eq!(t.dims(), [2, 512]);

    // Interrupted after 2 images (batches of 2), half a record appended (a kill mid-write) and
    // a reason past the last record (a kill between the two writes), then resumed: identical
    // to the one-shot build.
    let resumed = s.dir.path().join("resumed.safetensors");
    let opts = BuildOptions {
        batch: 2,
        max_new_images: Some(2),
        ..BuildOptions::default()
    };
    let r1 = s.build(&resumed, &opts).unwrap();
    assert!(!r1.finished && r1.processed == 2 && !resumed.exists(), "{r1:?}");
    let journal = journal_path(&resumed);
    let mut bytes = std::fs::read(&journal).unwrap();
    let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let record = 4 * (1 + 512 + a.meta.age_bins.len() + 13);
    assert_eq!(bytes.len(), header + 2 * record, "header + 2 records");
    bytes.extend_from_slice(&[0u8; 100]);
    std::fs::write(&journal, bytes).unwrap();
    let mut reasons = std::fs::read_to_string(skipped_path(&resumed)).unwrap();
    reasons.push_str("{\"i\":3,\"reason\":\"a kill between the writes\"}\n{\"i\":4,");
    std::fs::write(skipped_path(&resumed), reasons).unwrap();
    let r2 = s
        .build(
            &resumed,
            &BuildOptions {
                batch: 3,
                ..BuildOptions::default()
            },
        )
        .unwrap();
    assert!(r2.finished && r2.resumed == 2 && r2.processed == 4, "{r2:?}");
    let b = TargetCache::read(&resumed).unwrap();
    assert_eq!(a, b, "resumed cache differs from the one-shot build");
    assert!(!journal.exists() && !skipped_path(&resumed).exists());
    // Row reads give the same rows as the whole file.
    let file = CacheFile::open(&resumed).unwrap();
    assert_eq!((file.len(), file.ids.as_slice()), (a.len(), a.ids.as_slice()));
    for i in 0..a.len() {
        assert_eq!(file.row(i).unwrap(), a.row(i));
    }
    assert!(file
        .row(a.len())
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    // Written again through the row writer: the same file, byte for byte.
    let copy = s.dir.path().join("copy.safetensors");
    a.write(&copy).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&resumed).unwrap());

    // Running again is a no-op; other teachers are refused for both the cache and a journal.
    let again = s.build(&resumed, &BuildOptions::default()).unwrap();
    assert!(again.finished && again.processed == 0);
    let other = OtherVersion(&s.identity);
    let refuse = |out: &Path| {
        build_cache(
            &other,
            &s.age_gender,
            LandmarkSource::Detect(&s.mtcnn),
            &items,
            out,
            &BuildOptions::default(),
            &Default::default(),
        )
        .unwrap_err()
    };
    let e = refuse(&resumed);
    assert!(e.to_string().contains("refusing to mix"), "{e}");
    let partial = s.dir.path().join("partial.safetensors");
    s.build(&partial, &opts).unwrap();
    let e = refuse(&partial);
    assert!(
        e.to_string().contains("refusing to mix") && e.to_string().contains(".journal"),
        "{e}"
    );
    // Another image list against a finished cache.
    let e = build_cache(
        &s.identity,
        &s.age_gender,
        LandmarkSource::Detect(&s.mtcnn),
        &FileFaces::from_files("first three", items.files()[..3].to_vec()),
        &resumed,
        &BuildOptions::default(),
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("another image list"), "{e}");
    // Same number of images, one of them different.
    let mut files = items.files().to_vec();
    files[0].0 = "someone_else.png".into();
    let renamed = FileFaces::from_files("renamed", files);
    let e = build_cache(
        &s.identity,
        &s.age_gender,
        LandmarkSource::Detect(&s.mtcnn),
        &renamed,
        &resumed,
        &BuildOptions::default(),
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("another image list"), "{e}");

    // Killed while writing the journal's header: the next run starts afresh.
    let torn = s.dir.path().join("torn_header.safetensors");
    std::fs::write(journal_path(&torn), "{\"journal\":2,\"meta\":{\"format\":1,").unwrap();
    let r = s.build(&torn, &BuildOptions::default()).unwrap();
    assert!(r.finished && r.resumed == 0 && r.processed == 6, "{r:?}");
    assert_eq!(TargetCache::read(&torn).unwrap(), a);
}

#[test]
fn aligned_inputs_and_bad_files() {
    let s = setup();
    let dev = Default::default();
    // Tom Hanks' crop is ArcFace-aligned already; the 80 × 60 blank image is not square.
    let images = s.dir.path().join("images");
    let items = FileFaces::from_files(
        &images,
        vec![
            ("hanks".into(), images.join("Tom_Hanks_54745.png")),
            ("blank".into(), images.join("blank.png")),
        ],
    );
    let out = s.dir.path().join("aligned.safetensors");
    let r = build_cache(
        &s.identity,
        &s.age_gender,
        LandmarkSource::Aligned,
        &items,
        &out,
        &BuildOptions::default(),
        &dev,
    )
    .unwrap();
    assert!(r.finished && r.skipped == 1);
    let c = TargetCache::read(&out).unwrap();
    assert_eq!(c.meta.landmarks, "aligned");
    assert_eq!(c.skipped[0].0, "blank");
    assert!(c.skipped[0].1.contains("square"), "{:?}", c.skipped);
    let crop = face_data::read_rgb(items.path(0).unwrap()).unwrap();
    let direct = s
        .identity
        .embed(&s.identity.recipe().prepare_aligned::<B>(&[&crop], &dev).unwrap())
        .unwrap();
    let direct: Vec<f32> = direct.into_data().to_vec().unwrap();
    assert_eq!(c.embedding(0), direct.as_slice());

    // Duplicated ids and empty inputs.
    let dup = FileFaces::from_files("dup", vec![items.files()[0].clone(), items.files()[0].clone()]);
    let e = build_cache(
        &s.identity,
        &s.age_gender,
        LandmarkSource::Aligned,
        &dup,
        &out,
        &BuildOptions::default(),
        &dev,
    )
    .unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    assert!(matches!(
        build_cache(
            &s.identity,
            &s.age_gender,
            LandmarkSource::Aligned,
            &FileFaces::from_files("none", Vec::new()),
            &out,
            &BuildOptions::default(),
            &dev
        ),
        Err(TeacherError::EmptyBatch)
    ));
    // Files that are not caches.
    let junk = s.dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ").unwrap();
    let e = TargetCache::read(&junk).unwrap_err();
    assert!(e.to_string().contains("junk.safetensors"), "{e}");
    std::fs::write(&junk, b"garbage").unwrap();
    assert!(TargetCache::read(&junk)
        .unwrap_err()
        .to_string()
        .contains("not a safetensors file"));
    assert!(matches!(
        TargetCache::read(&s.dir.path().join("absent")),
        Err(TeacherError::Io { .. })
    ));
    // A list with a duplicate line names it.
    let list = s.dir.path().join("list.txt");
    std::fs::write(&list, "images/obama.png\n# comment\n\nimages/obama.png\n").unwrap();
    let e = FileFaces::list(&list).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}

/// The real identity teacher under another version string.
struct OtherVersion<'a>(&'a FrFeatureTeacher<B>);

impl IdentityTeacher<B> for OtherVersion<'_> {
    fn recipe(&self) -> &InputRecipe {
        self.0.recipe()
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn version(&self) -> String {
        "fr_feature.onnx:retrained".into()
    }
    fn embed(&self, input: &Prepared<B>) -> face_teachers::Result<Tensor<B, 2>> {
        self.0.embed(input)
    }
}

/// An insightface RecordIO set (written with face-data's writer): aligned crops go straight to
/// the teachers; a non-square record is skipped with its reason.
#[test]
fn recordio_input() {
    use face_data::formats::recordio::{pack, RecordIoWriter};
    let s = setup();
    let dev = Default::default();
    let rec = s.dir.path().join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    let images = s.dir.path().join("images");
    let hanks = std::fs::read(images.join("Tom_Hanks_54745.png")).unwrap();
    let blank = std::fs::read(images.join("blank.png")).unwrap();
    let mut w = RecordIoWriter::create(&rec.join("train.rec"), &rec.join("train.idx")).unwrap();
    w.write(0, &pack(0, &[3.0, 5.0], &[])).unwrap(); // header: images are keys 1..3
    w.write(1, &pack(1, &[4.0], &hanks)).unwrap();
    w.write(2, &pack(2, &[7.0], &blank)).unwrap();
    w.finish().unwrap();
    let items = RecordIoFaces::open(&rec).unwrap();
    assert_eq!(
        (0..items.len())
            .map(|i| items.id(i).unwrap().into_owned())
            .collect::<Vec<_>>(),
        ["rec:0:4", "rec:1:7"]
    );
    let out = s.dir.path().join("rec.safetensors");
    let r = build_cache(
        &s.identity,
        &s.age_gender,
        LandmarkSource::Aligned,
        &items,
        &out,
        &BuildOptions::default(),
        &dev,
    )
    .unwrap();
    assert!(r.finished && r.skipped == 1, "{r:?}");
    let c = TargetCache::read(&out).unwrap();
    assert_eq!(c.ids, ["rec:0:4"]);
    let crop = face_data::read_rgb(&images.join("Tom_Hanks_54745.png")).unwrap();
    let direct = s
        .identity
        .embed(&s.identity.recipe().prepare_aligned::<B>(&[&crop], &dev).unwrap())
        .unwrap();
    assert_eq!(
        c.embedding(0),
        direct.into_data().to_vec::<f32>().unwrap().as_slice()
    );
    assert!(RecordIoFaces::open(&s.dir.path().join("nothing")).is_err());
}
