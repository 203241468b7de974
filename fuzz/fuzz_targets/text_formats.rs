//! Every text parser of face-data on arbitrary input: errors are fine, panics are not. The
//! first byte picks the parser so one corpus covers all of them.
#![no_main]

use std::path::Path;

use face_data::formats::{celeba, folders, ijb, lfw, recordio};
use face_data::pairs::PairList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let p = Path::new("fuzz");
    match which % 11 {
        0 => drop(celeba::parse_identities(text, p)),
        1 => drop(celeba::parse_partitions(text, p)),
        2 => drop(celeba::CelebaAttributes::parse(text, p)),
        3 => drop(celeba::parse_landmarks(text, p)),
        4 => drop(celeba::parse_bboxes(text, p)),
        5 => drop(lfw::LfwPairs::parse(text, p)),
        6 => drop(ijb::parse_face_tid_mid(text, p)),
        7 => drop(ijb::parse_template_pairs(text, p)),
        8 => drop(ijb::parse_name_5pts_score(text, p)),
        9 => {
            drop(PairList::parse(text, p));
            drop(folders::parse_utkface_name(Path::new(text)));
        }
        _ => {
            drop(folders::parse_age_gender_csv(text, p, Path::new(".")));
            drop(recordio::parse_index(text, p));
        }
    }
});
