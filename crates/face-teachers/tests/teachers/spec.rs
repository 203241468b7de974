//! Teacher specs: the shipped specs are the bundled teachers; an ONNX graph read through
//! `columns`, `logits` and `years`; a PyTorch checkpoint and a facekit run as teachers; and
//! every bad spec the issue names, each a clear error naming the file and the key.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::tensor::activation::{sigmoid, softmax};
use face_nets::onnx::{OnnxError, OnnxModel};
use face_nets::{Backbone, BackboneConfig, FaceModelConfig, IResNetConfig, MobileFaceNetConfig, NetsError};
use face_teachers::spec::Template;
use face_teachers::{
    default_models_dir, AgeGenderTeacher, DlibAgeGenderTeacher, FaceRef, FrFeatureTeacher, IdentityTeacher,
    InputRecipe, SpecAgeGenderTeacher, SpecFile, SpecIdentityTeacher, TeacherError, TeacherSpec,
    DLIB_AGE_GENDER_SPEC, FR_FEATURE_SPEC,
};
use image::RgbImage;

use crate::{max_abs, values};
use serde_json::json;

type Nd = NdArray<f32>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn nets_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../face-nets/tests/fixtures")
        .join(name)
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `spec` (JSON) as `name` in `dir` and returns its path.
fn write_spec(dir: &Path, name: &str, spec: &serde_json::Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
    path
}

/// The reference face crops of the parity fixtures, at `size` px.
fn crops(size: u32) -> Vec<RgbImage> {
    ["obama_0", "biden_0", "faceapi_sample1_0"]
        .iter()
        .filter_map(|id| image::open(fixtures().join(format!("crops/{id}_{size}.png"))).ok())
        .map(|i| i.to_rgb8())
        .collect()
}

/// The faces of two real photos as MTCNN would hand them over (the parity fixtures' crops, the
/// landmarks of the ArcFace template inside them, the whole crop as the box).
fn faces() -> Vec<RgbImage> {
    let c = crops(112);
    assert!(c.len() >= 2, "the parity fixtures hold the 112 px crops");
    c
}

fn face_refs(images: &[RgbImage]) -> Vec<FaceRef<'_>> {
    let t = face_data::FaceTemplate::arcface(112).unwrap();
    images
        .iter()
        .map(|image| FaceRef {
            image,
            landmarks: std::array::from_fn(|j| t.points[j]),
            bbox: Some([8.0, 4.0, 104.0, 110.0]),
        })
        .collect()
}

#[test]
fn shipped_specs_are_the_bundled_teachers() {
    let dev = Default::default();
    let models = default_models_dir();
    let id_file = SpecFile::read(&models.join(FR_FEATURE_SPEC)).unwrap();
    let ag_file = SpecFile::read(&models.join(DLIB_AGE_GENDER_SPEC)).unwrap();
    assert_eq!(id_file.spec, TeacherSpec::fr_feature());
    assert_eq!(ag_file.spec, TeacherSpec::dlib_age_gender());

    let id = SpecIdentityTeacher::<Nd>::load(&id_file, &dev).unwrap();
    let bundled = FrFeatureTeacher::<Nd>::load(&models, &dev).unwrap();
    assert_eq!(id.dim(), 512);
    assert_eq!(id.version(), bundled.version());
    assert_eq!(id.recipe(), &FrFeatureTeacher::<Nd>::input_recipe());
    assert!(
        id.version().starts_with("spec:fr_feature.onnx:"),
        "{}",
        id.version()
    );
    let imgs = faces();
    let refs = face_refs(&imgs);
    let a = values(id.embed_faces(&refs, &dev).unwrap());
    let b = values(bundled.embed_faces(&refs, &dev).unwrap());
    assert_eq!(a, b);

    let ag = SpecAgeGenderTeacher::<Nd>::load(&ag_file, &dev).unwrap();
    let bundled = DlibAgeGenderTeacher::<Nd>::load(&models, &dev).unwrap();
    assert_eq!(ag.version(), bundled.version());
    assert_eq!(ag.age_bins(), face_teachers::AGE_V1_BINS.as_slice());
    let p = ag.predict_faces(&refs, &dev).unwrap();
    let q = bundled.predict_faces(&refs, &dev).unwrap();
    assert_eq!(values(p.age_probs), values(q.age_probs));
    assert_eq!(values(p.p_male), values(q.p_male));

    // The version hashes the spec and the model's hash, not where the file lies: a copy of the
    // spec elsewhere, naming the model by an absolute path, is the same teacher; any change
    // of recipe is another.
    let tmp = tempfile::tempdir().unwrap();
    let mut moved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join(FR_FEATURE_SPEC)).unwrap()).unwrap();
    moved["identity"]["model"]["onnx"]["file"] = json!(models.join("fr_feature.onnx"));
    let moved_path = write_spec(tmp.path(), "moved.json", &moved);
    let moved_teacher = SpecIdentityTeacher::<Nd>::load(&SpecFile::read(&moved_path).unwrap(), &dev).unwrap();
    assert_eq!(moved_teacher.version(), id.version());
    moved["identity"]["input"]["channels"] = json!("bgr");
    let bgr_path = write_spec(tmp.path(), "bgr.json", &moved);
    let bgr = SpecIdentityTeacher::<Nd>::load(&SpecFile::read(&bgr_path).unwrap(), &dev).unwrap();
    assert_ne!(bgr.version(), id.version());
    assert_ne!(bgr.recipe().name, id.recipe().name);
}

#[test]
fn an_onnx_graph_is_read_through_columns_logits_and_years() {
    let dev = Default::default();
    let onnx = fixtures().join("spec/genderage_tiny.onnx");
    let tmp = tempfile::tempdir().unwrap();
    let input = json!({"size": 32, "template": "resize", "mean": [127.5, 127.5, 127.5], "std": [128, 128, 128], "channels": "bgr"});
    let model = json!({"onnx": {"file": onnx, "sha256": sha256(&onnx)}});
    let spec = json!({
        "age": {"model": model, "input": input,
                "output": {"name": "fc1", "columns": [2, 3], "as": {"years": {"scale": 100.0}}}},
        "gender": {"model": model, "input": input,
                   "output": {"name": "fc1", "columns": [0, 2], "as": {"logits": {"male_index": 1}}}},
    });
    let path = write_spec(tmp.path(), "genderage.json", &spec);
    let teacher = SpecAgeGenderTeacher::<Nd>::load(&SpecFile::read(&path).unwrap(), &dev).unwrap();
    assert_eq!(teacher.age_bins().len(), 101);
    assert_eq!(teacher.age_recipe().alignment, face_teachers::Alignment::Resize);

    let imgs = faces();
    let refs = face_refs(&imgs);
    let out = teacher.predict_faces(&refs, &dev).unwrap();
    // The same batch through the graph by hand.
    let x = teacher.age_recipe().prepare::<Nd>(&refs, &dev).unwrap();
    let raw = values(
        OnnxModel::<Nd>::load(&onnx, &dev)
            .unwrap()
            .run(x.tensor().clone())
            .unwrap()
            .tensor::<2>("fc1")
            .unwrap(),
    );
    let n = imgs.len();
    let ages = values(out.expected_age);
    let males = values(out.p_male);
    let probs = values(out.age_probs);
    for i in 0..n {
        let r = &raw[i * 3..i * 3 + 3];
        let want_male = 1.0 / (1.0 + (r[0] - r[1]).exp());
        assert!((males[i] - want_male).abs() < 1e-6, "{} vs {want_male}", males[i]);
        let want_age = (100.0 * r[2]).clamp(0.0, 100.0);
        assert!((ages[i] - want_age).abs() < 1e-4, "{} vs {want_age}", ages[i]);
        // Two neighbouring one-year bins share the mass.
        let row = &probs[i * 101..(i + 1) * 101];
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(row.iter().filter(|p| **p > 0.0).count() <= 2);
        assert!(
            want_age > 1.0 && want_age < 99.0,
            "fixture ages stay inside the bins: {want_age}"
        );
    }
    // The pixels went in as BGR: the recipe says so, and the channel order changes the output.
    let rgb = InputRecipe {
        normalize: face_data::Normalize {
            order: face_data::ChannelOrder::Rgb,
            ..teacher.age_recipe().normalize
        },
        ..teacher.age_recipe().clone()
    };
    let y = rgb.prepare::<Nd>(&refs, &dev).unwrap();
    assert_ne!(values(x.tensor().clone()), values(y.tensor().clone()));
}

#[test]
fn a_pytorch_checkpoint_is_an_identity_teacher() {
    let dev = Default::default();
    let pth = nets_fixture("iresnet18_w8.pth");
    let backbone = BackboneConfig::IResNet(IResNetConfig::r18().with_base_width(8).with_num_features(32));
    let tmp = tempfile::tempdir().unwrap();
    let input = json!({"size": 112, "template": "arcface", "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5], "channels": "rgb"});
    let spec = json!({"identity": {"model": {"torch": {"file": pth, "sha256": sha256(&pth), "backbone": backbone}}, "input": input}});
    let path = write_spec(tmp.path(), "iresnet.json", &spec);
    let teacher = SpecIdentityTeacher::<Nd>::load(&SpecFile::read(&path).unwrap(), &dev).unwrap();
    assert_eq!(teacher.dim(), 32);
    let imgs = faces();
    let refs = face_refs(&imgs);
    let x = teacher.recipe().prepare::<Nd>(&refs, &dev).unwrap();
    let ours = values(teacher.raw_embeddings(&x).unwrap());
    // face-nets' loader (held to PyTorch by its own parity tests) on the same batch.
    let BackboneConfig::IResNet(c) = &backbone else {
        unreachable!()
    };
    let (net, _) = c.load_torch::<Nd>(&pth, &dev).unwrap();
    let direct = values(net.features(x.tensor().clone()));
    assert_eq!(ours, direct);
    let unit = values(teacher.embed(&x).unwrap());
    for row in unit.chunks(32) {
        assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
    }

    // The same checkpoint named as another architecture: what the model lacks and what the
    // file has left over are both listed.
    let wrong = BackboneConfig::MobileFaceNet(MobileFaceNetConfig::new().with_num_features(32));
    let spec = json!({"identity": {"model": {"torch": {"file": pth, "sha256": sha256(&pth), "backbone": wrong}}, "input": input}});
    let path = write_spec(tmp.path(), "wrong_arch.json", &spec);
    let e = SpecIdentityTeacher::<Nd>::load(&SpecFile::read(&path).unwrap(), &dev).unwrap_err();
    match &e {
        TeacherError::Nets(NetsError::Keys {
            path: p,
            missing,
            unused,
        }) => {
            assert_eq!(p, &pth);
            assert!(
                !missing.is_empty() && !unused.is_empty(),
                "{missing:?} / {unused:?}"
            );
            assert!(unused.iter().any(|k| k.starts_with("layer1.")), "{unused:?}");
        }
        other => panic!("expected a key mismatch, got {other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("iresnet18_w8.pth") && text.contains("missing") && text.contains("unused"),
        "{text}"
    );

    // A backbone's input size is its own.
    let mut bad = spec.clone();
    bad["identity"]["model"]["torch"]["backbone"] = json!(backbone);
    bad["identity"]["input"]["size"] = json!(128);
    let path = write_spec(tmp.path(), "size.json", &bad);
    let e = SpecIdentityTeacher::<Nd>::load(&SpecFile::read(&path).unwrap(), &dev).unwrap_err();
    assert!(
        e.to_string().contains("identity.input.size") && e.to_string().contains("takes 112 px"),
        "{e}"
    );
}

#[test]
fn a_facekit_run_is_a_teacher() {
    let dev = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let config = FaceModelConfig::new(
        BackboneConfig::IResNet(IResNetConfig::r18().with_base_width(8).with_num_features(32)),
        24,
        vec![5.0, 25.0, 45.0, 65.0],
    );
    let model = config.init::<Nd>(&dev).unwrap();
    model.save(&config, &run).unwrap();
    let weights = run.join(face_nets::model::files::WEIGHTS);
    let m = json!({"run": {"dir": "run", "sha256": sha256(&weights)}});
    let spec = json!({"identity": {"model": m}, "age": {"model": m}, "gender": {"model": m}});
    let path = write_spec(tmp.path(), "student.json", &spec);
    let file = SpecFile::read(&path).unwrap();
    let id = SpecIdentityTeacher::<Nd>::load(&file, &dev).unwrap();
    let ag = SpecAgeGenderTeacher::<Nd>::load(&file, &dev).unwrap();
    assert_eq!(id.dim(), 24);
    assert_eq!(id.recipe(), &InputRecipe::face_model(112));
    assert_eq!(ag.age_bins(), &[5.0, 25.0, 45.0, 65.0]);

    let imgs = faces();
    let refs = face_refs(&imgs);
    let x = id.recipe().prepare::<Nd>(&refs, &dev).unwrap();
    let heads = model.forward(x.tensor().clone());
    assert!(max_abs(&values(id.embed(&x).unwrap()), &values(heads.embedding.clone())) < 1e-6);
    let out = ag.predict_faces(&refs, &dev).unwrap();
    assert!(
        max_abs(
            &values(out.age_probs),
            &values(softmax(heads.age_logits.clone(), 1))
        ) < 1e-6
    );
    assert!(max_abs(&values(out.p_male), &values(sigmoid(heads.gender_logit.clone()))) < 1e-6);
    assert!(
        max_abs(
            &values(out.expected_age),
            &values(model.expected_age(heads.age_logits))
        ) < 1e-4
    );

    // Another student is another teacher.
    let other = config.init::<Nd>(&dev).unwrap();
    let run2 = tmp.path().join("run2");
    other.save(&config, &run2).unwrap();
    let m2 = json!({"run": {"dir": "run2", "sha256": sha256(&run2.join(face_nets::model::files::WEIGHTS))}});
    let path2 = write_spec(tmp.path(), "student2.json", &json!({"identity": {"model": m2}}));
    let id2 = SpecIdentityTeacher::<Nd>::load(&SpecFile::read(&path2).unwrap(), &dev).unwrap();
    assert_ne!(id2.version(), id.version());

    // A run has its own outputs.
    let bad = json!({"identity": {"model": m, "output": {"name": "embedding"}}});
    let path = write_spec(tmp.path(), "bad.json", &bad);
    let e = SpecIdentityTeacher::<Nd>::load(&SpecFile::read(&path).unwrap(), &dev).unwrap_err();
    assert!(
        e.to_string().contains("identity.output") && e.to_string().contains("remove `output`"),
        "{e}"
    );
}

/// The bundled identity spec as JSON, with the model named by its absolute path.
fn fr_feature_json() -> serde_json::Value {
    let models = default_models_dir();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join(FR_FEATURE_SPEC)).unwrap()).unwrap();
    v["identity"]["model"]["onnx"]["file"] = json!(models.join("fr_feature.onnx"));
    v
}

fn dlib_json() -> serde_json::Value {
    let models = default_models_dir();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join(DLIB_AGE_GENDER_SPEC)).unwrap()).unwrap();
    v["age"]["model"]["onnx"]["file"] = json!(models.join("age-v1.onnx"));
    v["gender"]["model"]["onnx"]["file"] = json!(models.join("gender-v1.onnx"));
    v
}

fn identity_error(dir: &Path, name: &str, spec: &serde_json::Value) -> (PathBuf, TeacherError) {
    let path = write_spec(dir, name, spec);
    let e = SpecFile::read(&path)
        .and_then(|f| SpecIdentityTeacher::<Nd>::load(&f, &Default::default()))
        .unwrap_err();
    (path, e)
}

#[test]
fn bad_specs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // An unknown key, deep inside: the file, the line and the dotted key.
    let mut v = fr_feature_json();
    v["identity"]["input"]["templat"] = json!("arcface");
    let (path, e) = identity_error(dir, "unknown.json", &v);
    let text = e.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("identity.input.templat"),
        "{text}"
    );
    assert!(text.contains("did you mean `identity.input.template`"), "{text}");
    // … and an unknown model kind.
    let mut v = fr_feature_json();
    v["identity"]["model"] = json!({"tflite": {"file": "x.tflite", "sha256": "00"}});
    let (_, e) = identity_error(dir, "kind.json", &v);
    assert!(e.to_string().contains("tflite"), "{e}");

    // A wrong SHA-256: the model file, the hash found and the one the spec expects.
    let mut v = fr_feature_json();
    v["identity"]["model"]["onnx"]["sha256"] = json!("00".repeat(32));
    let (path, e) = identity_error(dir, "sha.json", &v);
    assert!(matches!(e, TeacherError::ModelVersion { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("fr_feature.onnx")
            && text.contains("87aacdfe")
            && text.contains(&path.display().to_string()),
        "{text}"
    );

    // A missing model file, and a missing spec file.
    let mut v = fr_feature_json();
    v["identity"]["model"]["onnx"]["file"] = json!("nowhere.onnx");
    let (_, e) = identity_error(dir, "missing.json", &v);
    assert!(
        matches!(&e, TeacherError::MissingModel { path } if path.ends_with("nowhere.onnx")),
        "{e}"
    );
    let e = SpecFile::read(&dir.join("no_spec.json")).unwrap_err();
    assert!(
        e.to_string().contains("no_spec.json") && e.to_string().contains("no such file"),
        "{e}"
    );

    // An ONNX file with an operator the executor does not run: refused at load, naming it.
    let onnx = nets_fixture("onnx/unsupported_op.onnx");
    let mut v = fr_feature_json();
    v["identity"]["model"]["onnx"] = json!({"file": onnx, "sha256": sha256(&onnx)});
    let (_, e) = identity_error(dir, "topk.json", &v);
    assert!(
        matches!(e, TeacherError::Onnx(OnnxError::Unsupported { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("TopK"), "{e}");

    // A graph whose input size disagrees with the spec.
    let mut v = fr_feature_json();
    v["identity"]["input"]["size"] = json!(100);
    let (_, e) = identity_error(dir, "size.json", &v);
    assert!(
        matches!(e, TeacherError::Onnx(OnnxError::InputShape { .. })),
        "{e}"
    );
    assert!(
        e.to_string().contains("fr_feature.onnx") && e.to_string().contains("100"),
        "{e}"
    );

    // An output name that is not in the graph: the names that are.
    let mut v = fr_feature_json();
    v["identity"]["output"]["name"] = json!("embedding");
    let (_, e) = identity_error(dir, "output.json", &v);
    assert!(matches!(e, TeacherError::Onnx(OnnxError::NoOutput { .. })), "{e}");
    assert!(
        e.to_string().contains("embedding") && e.to_string().contains("output"),
        "{e}"
    );
    // … and an ONNX network without one.
    let mut v = fr_feature_json();
    v["identity"].as_object_mut().unwrap().remove("output");
    let (_, e) = identity_error(dir, "no_output.json", &v);
    assert!(e.to_string().contains("`identity.output`"), "{e}");
    // … or a spec without the network asked for.
    let (_, e) = identity_error(dir, "only_age.json", &dlib_json());
    assert!(e.to_string().contains("has no identity network"), "{e}");

    let age_error = |name: &str, v: &serde_json::Value| {
        let path = write_spec(dir, name, v);
        SpecFile::read(&path)
            .and_then(|f| SpecAgeGenderTeacher::<Nd>::load(&f, &Default::default()))
            .unwrap_err()
    };
    // An age spec whose bin count disagrees with the model.
    let mut v = dlib_json();
    v["age"]["output"]["as"]["bins"] = json!((1..=80).collect::<Vec<_>>());
    let e = age_error("bins.json", &v);
    assert!(
        e.to_string().contains("`age.output.as`")
            && e.to_string()
                .contains("80 age bins, but the model's output has 81"),
        "{e}"
    );
    // Years are one value.
    let mut v = dlib_json();
    v["age"]["output"]["as"] = json!({"years": {"scale": 1.0}});
    let e = age_error("years.json", &v);
    assert!(
        e.to_string()
            .contains("years are one value, but the output has 81"),
        "{e}"
    );
    // A male index outside the gender output.
    let mut v = dlib_json();
    v["gender"]["output"]["as"] = json!({"probabilities": {"male_index": 2}});
    let e = age_error("male.json", &v);
    assert!(
        e.to_string().contains("`gender.output.as`") && e.to_string().contains("2 values"),
        "{e}"
    );
    // Columns outside the output.
    let mut v = dlib_json();
    v["gender"]["output"]["columns"] = json!([1, 3]);
    let e = age_error("columns.json", &v);
    assert!(
        e.to_string().contains("[1, 3)") && e.to_string().contains("2-wide"),
        "{e}"
    );
    // A PyTorch backbone cannot tell age.
    let pth = nets_fixture("iresnet18_w8.pth");
    let mut v = dlib_json();
    v["age"]["model"] = json!({"torch": {"file": pth, "sha256": sha256(&pth),
        "backbone": BackboneConfig::IResNet(IResNetConfig::r18().with_base_width(8).with_num_features(32))}});
    let e = age_error("torch_age.json", &v);
    assert!(
        e.to_string().contains("`age.model`") && e.to_string().contains("no age or gender head"),
        "{e}"
    );
}

#[test]
fn templates_cut_the_faces_they_name() {
    // A facenet recipe cuts the box, not the landmarks; without a box it refuses.
    let imgs = faces();
    let mut refs = face_refs(&imgs);
    let spec = face_teachers::spec::InputSpec {
        size: 40,
        template: Template::Facenet { margin: 4 },
        mean: [127.5; 3],
        std: [128.0; 3],
        scale: 1.0,
        channels: face_teachers::spec::Channels::Rgb,
    };
    let recipe = spec.recipe();
    let crop = recipe.crop(&refs[0]).unwrap();
    let want = face_data::facenet_crop(&imgs[0], [8.0, 4.0, 104.0, 110.0], 40, 4).unwrap();
    assert_eq!(crop, want);
    refs[0].bbox = None;
    let e = recipe.prepare::<Nd>(&refs, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("without its detection box"), "{e}");
    assert!(recipe.template().is_err());
    // ArcFace recipes crop what `prepare` normalises.
    let arc = InputRecipe::face_model(112);
    let refs = face_refs(&imgs);
    let a = face_data::Chw::from_rgb(&arc.crop(&refs[0]).unwrap(), &arc.normalize).data;
    let b = values(
        arc.prepare::<Nd>(&refs[..1], &Default::default())
            .unwrap()
            .tensor()
            .clone(),
    );
    assert!(max_abs(&a, &b) < 1e-6);
}
