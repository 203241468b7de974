//! P×K sampling, imbalance measures, ML-ROS and demographic-balanced pair lists.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use face_data::imbalance::{
    charte_measures, imbalance, ml_ros, Attribute, LabelTable, MlRosConfig, StopReason, MISSING,
};
use face_data::pairs::{balanced_pairs, GroupedImage, PairList};
use face_data::{DataError, PkSampler};
use rand::{Rng, SeedableRng};

#[test]
fn pk_batches_have_p_identities_of_k_distinct_images() {
    // 10 identities with 3..=7 images, 2 with a single image.
    let mut labels = Vec::new();
    for id in 0..10u32 {
        labels.extend(std::iter::repeat_n(id, 3 + (id as usize % 5)));
    }
    labels.extend([10, 11]);
    let s = PkSampler::new(&labels, 4, 3, 1).unwrap();
    assert_eq!(s.excluded(), 2);
    assert_eq!(s.batches_per_epoch(), 2);
    let mut used = HashSet::new();
    for batch in s.epoch(0) {
        assert_eq!(batch.len(), 12);
        assert_eq!(batch.iter().collect::<HashSet<_>>().len(), 12, "distinct images");
        for chunk in batch.chunks(3) {
            let l = labels[chunk[0]];
            assert!(
                chunk.iter().all(|&i| labels[i] == l),
                "K consecutive images share an identity"
            );
            assert!(used.insert(l), "an identity appears once per epoch");
        }
    }
    assert_eq!(s.epoch(3), s.epoch(3), "deterministic");
    assert_ne!(s.epoch(0), s.epoch(1), "epochs differ");
    assert_eq!(PkSampler::new(&labels, 4, 3, 1).unwrap().epoch(0), s.epoch(0));
    assert!(matches!(
        PkSampler::new(&labels, 11, 3, 1),
        Err(DataError::NotEnough(_))
    ));
    assert!(PkSampler::new(&labels, 1, 3, 1).is_err());
    assert!(PkSampler::new(&labels, 2, 1, 1).is_err());
}

fn attr(name: &str, cats: &[&str]) -> Attribute {
    Attribute {
        name: name.into(),
        categories: cats.iter().map(|c| (*c).into()).collect(),
    }
}

#[test]
fn imbalance_hand_computed() {
    // gender: 6 m, 2 f → ratio 3, IRLbl (1, 3); race: 4 a, 2 b, 1 c, 1 missing → ratio 4,
    // IRLbl (1, 2, 4). MeanIR over the 5 cells = (1 + 3 + 1 + 2 + 4) / 5 = 2.2.
    let gender = [0, 0, 0, 0, 0, 0, 1, 1];
    let race = [0, 0, 0, 0, 1, 1, 2, MISSING];
    let values: Vec<u16> = gender.iter().zip(race).flat_map(|(&g, r)| [g, r]).collect();
    let table = LabelTable::new(
        vec![attr("gender", &["m", "f"]), attr("race", &["a", "b", "c", "d"])],
        values,
    )
    .unwrap();
    let r = imbalance(&table);
    assert_eq!(r.attributes[0].counts, [6, 2]);
    assert_eq!(r.attributes[0].ratio, 3.0);
    assert_eq!(r.attributes[1].counts, [4, 2, 1, 0]);
    assert_eq!(r.attributes[1].irlbl, [Some(1.0), Some(2.0), Some(4.0), None]);
    assert_eq!(r.attributes[1].empty, ["d"]);
    assert_eq!(r.attributes[1].ratio, 4.0);
    assert!((r.attributes[1].mean_ir - 7.0 / 3.0).abs() < 1e-12);
    assert!((r.mean_ir - 2.2).abs() < 1e-12);
    assert_eq!(r.max_ratio, 4.0);
    // Bad tables.
    assert!(LabelTable::new(vec![attr("g", &["m", "f"])], vec![0, 2]).is_err());
    assert!(LabelTable::new(vec![attr("g", &["m", "f"]), attr("r", &["a"])], vec![0, 0, 1]).is_err());
    assert!(LabelTable::new(vec![attr("g", &[])], vec![]).is_err());
}

#[test]
fn charte_measures_hand_computed() {
    // Labels' positives: 4, 2, 1 → IRLbl 1, 2, 4; MeanIR 7/3; CVIR = pop.std / mean.
    let rows = [
        [true, true, true],
        [true, true, false],
        [true, false, false],
        [true, false, false],
    ];
    let values: Vec<bool> = rows.iter().flatten().copied().collect();
    let m = charte_measures(&values, 3).unwrap();
    assert_eq!(m.positives, [4, 2, 1]);
    assert_eq!(m.irlbl, [Some(1.0), Some(2.0), Some(4.0)]);
    let mean = 7.0 / 3.0;
    let sd = (((1.0f64 - mean).powi(2) + (2.0 - mean).powi(2) + (4.0 - mean).powi(2)) / 3.0).sqrt();
    assert!((m.mean_ir - mean).abs() < 1e-12);
    assert!((m.cvir - sd / mean).abs() < 1e-12);
    assert_eq!(m.max_ir, 4.0);
    assert!(charte_measures(&[false, false], 2).is_err());
    assert!(charte_measures(&[true, false, true], 2).is_err());
}

/// A synthetic CelebA-like table: 5 correlated binary attributes with skewed rates.
fn synthetic_table(n: usize, seed: u64) -> LabelTable {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let rates = [0.5, 0.2, 0.08, 0.03, 0.3];
    let mut values = Vec::with_capacity(n * 5);
    for _ in 0..n {
        let young = rng.gen_bool(0.7);
        for (j, &r) in rates.iter().enumerate() {
            // Attribute 2 depends on attribute 0's draw to create interactions.
            let p = if j == 2 && young { r * 0.5 } else { r };
            values.push(u16::from(rng.gen_bool(p)));
        }
    }
    let names: Vec<Attribute> = (0..5)
        .map(|j| attr(&format!("a{j}"), &["absent", "present"]))
        .collect();
    LabelTable::new(names, values).unwrap()
}

#[test]
fn ml_ros_reduces_mean_ir_with_minority_samples() {
    let table = synthetic_table(2000, 3);
    let cfg = MlRosConfig {
        target_mean_ir: 1.5,
        max_added: 3000,
        seed: 11,
    };
    let out = ml_ros(&table, &cfg).unwrap();
    assert!(
        out.before.mean_ir > 5.0,
        "synthetic table is imbalanced: {}",
        out.before.mean_ir
    );
    assert!(
        out.after.mean_ir < out.before.mean_ir,
        "{} → {}",
        out.before.mean_ir,
        out.after.mean_ir
    );
    assert!(out.after.mean_ir >= 1.0);
    assert!(out.trajectory.iter().all(|&m| m >= 1.0));
    assert!(!out.added.is_empty() && out.added.len() <= cfg.max_added);
    // Replaying the additions: each added row belongs to the smallest category of the most
    // imbalanced attribute at the moment it was added.
    let mut counts = table.counts();
    for &row in &out.added {
        let (a, _) = counts
            .iter()
            .enumerate()
            .map(|(j, c)| {
                (
                    j,
                    *c.iter().max().unwrap() as f64 / *c.iter().filter(|&&x| x > 0).min().unwrap() as f64,
                )
            })
            .fold((0, 0.0), |best, (j, r)| if r > best.1 { (j, r) } else { best });
        let minority = (0..2)
            .filter(|&c| counts[a][c] > 0)
            .min_by_key(|&c| counts[a][c])
            .unwrap();
        assert_eq!(
            table.row(row)[a] as usize,
            minority,
            "row {row} is not in the minority category of attribute {a}"
        );
        for (j, &v) in table.row(row).iter().enumerate() {
            counts[j][v as usize] += 1;
        }
    }
    // The after report counts the added rows.
    let added_total: u64 = out.after.attributes[0].counts.iter().sum();
    assert_eq!(added_total as usize, 2000 + out.added.len());
    // Deterministic; another seed differs.
    assert_eq!(ml_ros(&table, &cfg).unwrap().added, out.added);
    assert_ne!(
        ml_ros(&table, &MlRosConfig { seed: 12, ..cfg }).unwrap().added,
        out.added
    );
}

#[test]
fn ml_ros_stops_at_target_and_on_balance() {
    // One attribute 3:1 → adding 2 minority rows balances it exactly.
    let table = LabelTable::new(vec![attr("g", &["m", "f"])], vec![0, 0, 0, 1]).unwrap();
    let out = ml_ros(
        &table,
        &MlRosConfig {
            target_mean_ir: 1.0,
            max_added: 100,
            seed: 0,
        },
    )
    .unwrap();
    assert_eq!(out.added, [3, 3]);
    assert_eq!(out.stop, StopReason::TargetReached);
    assert_eq!(out.after.mean_ir, 1.0);
    let out = ml_ros(
        &table,
        &MlRosConfig {
            target_mean_ir: 1.0,
            max_added: 1,
            seed: 0,
        },
    )
    .unwrap();
    assert_eq!((out.added.len(), out.stop), (1, StopReason::Budget));
    assert!(ml_ros(
        &table,
        &MlRosConfig {
            target_mean_ir: 0.5,
            max_added: 1,
            seed: 0
        }
    )
    .is_err());
    assert!(ml_ros(
        &table,
        &MlRosConfig {
            target_mean_ir: f64::NAN,
            max_added: 1,
            seed: 0
        }
    )
    .is_err());
}

fn demographic_images() -> Vec<GroupedImage> {
    let groups = [
        "female/african",
        "female/asian",
        "female/caucasian",
        "male/african",
        "male/asian",
        "male/caucasian",
    ];
    let mut out = Vec::new();
    let mut id = 0u32;
    for (g, name) in groups.iter().enumerate() {
        for _ in 0..(8 + g) {
            for k in 0..(2 + (id as usize % 4)) {
                out.push(GroupedImage {
                    path: format!("{name}/{id}/{k}.jpg"),
                    identity: id,
                    group: (*name).to_owned(),
                });
            }
            id += 1;
        }
    }
    out
}

#[test]
fn balanced_pairs_per_group_half_genuine_impostors_within_group() {
    let images = demographic_images();
    let by_path: HashMap<&str, &GroupedImage> = images.iter().map(|i| (i.path.as_str(), i)).collect();
    let list = balanced_pairs(&images, 40, 9).unwrap();
    assert_eq!(list.pairs.len(), 6 * 40);
    let counts = list.group_counts();
    assert_eq!(counts.len(), 6);
    assert!(counts.values().all(|&(g, i)| g == 20 && i == 20));
    let mut seen = HashSet::new();
    for p in &list.pairs {
        let (a, b) = (by_path[p.a.as_str()], by_path[p.b.as_str()]);
        assert_eq!(a.group, p.group);
        assert_eq!(b.group, p.group, "impostors stay within the group");
        assert_eq!(a.identity == b.identity, p.genuine);
        assert_ne!(p.a, p.b);
        let key = if p.a < p.b { (&p.a, &p.b) } else { (&p.b, &p.a) };
        assert!(seen.insert(key), "duplicate pair {key:?}");
    }
    assert_eq!(balanced_pairs(&images, 40, 9).unwrap(), list, "deterministic");
    // Round trip through the file format.
    let text = list.to_text().unwrap();
    assert_eq!(PairList::parse(&text, Path::new("p.tsv")).unwrap(), list);
    let dir = std::env::temp_dir().join(format!("facekit-pairs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    list.write(&dir.join("pairs.tsv")).unwrap();
    assert_eq!(PairList::read(&dir.join("pairs.tsv")).unwrap(), list);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn balanced_pairs_errors() {
    let images = demographic_images();
    assert!(balanced_pairs(&images, 3, 0).is_err(), "odd count");
    // female/african has 8 identities with 2–5 images: asking for 1000 genuine pairs fails,
    // naming the group.
    let e = balanced_pairs(&images, 2000, 0).unwrap_err();
    assert!(e.to_string().contains("female/african"), "{e}");
    // Near-exhaustive requests are met exactly, without duplicates.
    let small: Vec<GroupedImage> = (0..3u32)
        .flat_map(|id| {
            (0..2).map(move |k| GroupedImage {
                path: format!("{id}/{k}"),
                identity: id,
                group: "g".into(),
            })
        })
        .collect();
    let l = balanced_pairs(&small, 6, 1).unwrap();
    assert_eq!(l.group_counts()["g"], (3, 3));
    assert!(
        balanced_pairs(&small, 8, 1).is_err(),
        "only 3 genuine pairs exist"
    );
    let mut bad = small.clone();
    bad[0].group = "h".into();
    assert!(matches!(
        balanced_pairs(&bad, 2, 0),
        Err(DataError::Inconsistent(_))
    ));
}

#[test]
fn pair_list_parse_errors() {
    let p = Path::new("pairs.tsv");
    let e = PairList::parse("# c\ng\t1\ta\n", p).unwrap_err();
    assert!(matches!(e, DataError::Parse { line: 2, .. }), "{e}");
    let e = PairList::parse("g\t2\ta\tb\n", p).unwrap_err();
    assert!(matches!(e, DataError::Parse { line: 1, .. }), "{e}");
    assert!(PairList::parse("g\t1\t\tb\n", p).is_err());
    let bad = PairList {
        pairs: vec![face_data::pairs::Pair {
            group: "g".into(),
            genuine: true,
            a: "a\tb".into(),
            b: "c".into(),
        }],
    };
    assert!(bad.to_text().is_err());
    // Paths with spaces survive.
    let ok = PairList::parse("\tl\n", p);
    assert!(ok.is_err());
    let ok = PairList::parse("\t1\tmy dir/a b.jpg\tc.jpg\r\n", p).unwrap();
    assert_eq!(ok.pairs[0].a, "my dir/a b.jpg");
    assert_eq!(ok.pairs[0].b, "c.jpg");
}
