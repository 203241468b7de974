//! The one configuration layer: JSON files and `key=value` overrides, strict at every depth.
//!
//! serde ignores keys a type does not know unless each struct says `deny_unknown_fields`, and
//! types derived elsewhere (Burn's `#[derive(Config)]`) cannot say it. So a typo such as
//! `"base_widht": 64` deep inside a backbone section would be dropped and the default used.
//! Here the text is parsed, deserialised, serialised again, and every key of the text must be
//! found in the re-serialised value: an unknown key is an error naming its full dotted path,
//! whatever type defines that section.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{IoError, Result};

/// The pseudo-path of command-line overrides in errors.
pub const OVERRIDE_SOURCE: &str = "<override>";

/// Levenshtein distance (for "did you mean" hints).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The first key of `given` (depth first, in document order) that `known` lacks, with a hint.
fn first_unknown(given: &Value, known: &Value, prefix: &str) -> Option<(String, Option<String>)> {
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => {
            for (key, gv) in g {
                match k.get(key) {
                    Some(kv) => {
                        if let Some(found) = first_unknown(gv, kv, &join(prefix, key)) {
                            return Some(found);
                        }
                    }
                    None => {
                        let hint = k
                            .keys()
                            .map(|c| (distance(key, c), c))
                            .filter(|(d, c)| *d <= 2.max(c.len() / 4))
                            .min()
                            .map(|(_, c)| join(prefix, c));
                        return Some((join(prefix, key), hint));
                    }
                }
            }
            None
        }
        (Value::Array(g), Value::Array(k)) => g
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (gv, kv))| first_unknown(gv, kv, &join(prefix, &i.to_string()))),
        _ => None,
    }
}

/// The dotted path of every section (JSON object) of a configuration, the root as `""`, in
/// document order — what a "test per config section" walks.
///
/// # Examples
/// ```
/// #[derive(serde::Serialize)]
/// struct Optim { lr: f64 }
/// #[derive(serde::Serialize)]
/// struct Config { optim: Optim, seed: u64 }
/// let s = face_io::sections(&Config { optim: Optim { lr: 0.1 }, seed: 0 }).unwrap();
/// assert_eq!(s, ["", "optim"]);
/// ```
///
/// # Errors
/// A value that cannot be serialised.
pub fn sections<T: Serialize>(config: &T) -> Result<Vec<String>> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = v {
            out.push(prefix.to_owned());
            for (k, child) in map {
                walk(child, &join(prefix, k), out);
            }
        }
    }
    let v = serde_json::to_value(config).map_err(|e| IoError::Serialise {
        path: OVERRIDE_SOURCE.into(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    walk(&v, "", &mut out);
    Ok(out)
}

/// The configuration as JSON text with the key `key` added to the section at `section` (a
/// dotted path from [`sections`]): the probe of a test that every section refuses an unknown key.
///
/// # Errors
/// A value that cannot be serialised, or a section that does not exist.
pub fn with_extra_key<T: Serialize>(config: &T, section: &str, key: &str) -> Result<String> {
    let mut v = serde_json::to_value(config).map_err(|e| IoError::Serialise {
        path: OVERRIDE_SOURCE.into(),
        message: e.to_string(),
    })?;
    let mut node = &mut v;
    for part in section.split('.').filter(|p| !p.is_empty()) {
        node = match node {
            Value::Object(map) => map.get_mut(part),
            _ => None,
        }
        .ok_or_else(|| IoError::UnknownKey {
            path: OVERRIDE_SOURCE.into(),
            key: section.to_owned(),
            hint: None,
        })?;
    }
    match node {
        Value::Object(map) => {
            map.insert(key.to_owned(), Value::Bool(true));
        }
        _ => {
            return Err(IoError::Override {
                text: section.to_owned(),
                message: "not a section".into(),
            })
        }
    }
    Ok(v.to_string())
}

/// Checks that `T` refuses an unknown key in every section of `config` and names it by its full
/// dotted path, both in a file and as an override — the "test per config section" of a
/// configuration type. Externally tagged enums (`{"Window": {"n": 8}}`) are a choice, not a
/// section: serde refuses a second key there itself. Returns the sections checked.
///
/// # Errors
/// The first section that let an unknown key through or did not name it, with what it said.
pub fn check_every_section<T>(config: &T) -> std::result::Result<Vec<String>, String>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    let tree = serde_json::to_value(config).map_err(|e| e.to_string())?;
    let at = |section: &str| {
        section
            .split('.')
            .filter(|p| !p.is_empty())
            .fold(&tree, |v, p| &v[p])
    };
    let is_enum = |section: &str| {
        at(section).as_object().is_some_and(|m| {
            m.len() == 1 && m.keys().all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
        })
    };
    let source = Path::new("config.json");
    let sections: Vec<String> = sections(config)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|s| !is_enum(s))
        .collect();
    for section in &sections {
        let key = join(section, "typo_key");
        let text = with_extra_key(config, section, "typo_key").map_err(|e| e.to_string())?;
        match parse_config::<T>(&text, source) {
            Err(IoError::UnknownKey { key: k, .. }) if k == key => {}
            Err(e) => return Err(format!("section `{section}`: {e}")),
            Ok(_) => return Err(format!("section `{section}` accepted `{key}`")),
        }
        match apply_overrides(config, &[format!("{key}=1")]) {
            Err(IoError::UnknownKey { key: k, .. }) if k == key => {}
            Err(e) => return Err(format!("override in `{section}`: {e}")),
            Ok(_) => return Err(format!("override `{key}` accepted")),
        }
    }
    let text = serde_json::to_string(config).map_err(|e| e.to_string())?;
    match parse_config::<T>(&text, source) {
        Ok(back) if back == *config => Ok(sections),
        Ok(_) => Err("the configuration does not read back as written".into()),
        Err(e) => Err(format!("the configuration does not read back: {e}")),
    }
}

/// Deserialises `value` into `T` and refuses any key `T` does not have, at any depth.
///
/// # Errors
/// [`IoError::Json`] when the value does not fit `T`, [`IoError::UnknownKey`] for a key `T`
/// lacks.
pub fn from_value_strict<T: Serialize + DeserializeOwned>(value: Value, source: &Path) -> Result<T> {
    let config: T = serde_json::from_value(value.clone()).map_err(|e| IoError::json(source, &e))?;
    check_keys(&value, &config, source)?;
    Ok(config)
}

/// Parses a configuration from JSON text (missing keys take the type's defaults where it has
/// them; unknown keys are errors at every depth). `source` names the text in errors.
///
/// # Errors
/// Malformed JSON (with line and column), a value of the wrong type, or an unknown key.
///
/// # Examples
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, Default, Debug)]
/// #[serde(default)]
/// struct Net { width: usize }
/// #[derive(serde::Serialize, serde::Deserialize, Default, Debug)]
/// #[serde(default)]
/// struct Config { net: Net, lr: f64 }
/// let path = std::path::Path::new("run.json");
/// let c: Config = face_io::parse_config(r#"{"net": {"width": 64}}"#, path)?;
/// assert_eq!((c.net.width, c.lr), (64, 0.0));
/// let err = face_io::parse_config::<Config>(r#"{"net": {"widht": 64}}"#, path).unwrap_err();
/// assert_eq!(err.to_string(), "run.json: unknown key `net.widht` (did you mean `net.width`?)");
/// # Ok::<(), face_io::IoError>(())
/// ```
pub fn parse_config<T: Serialize + DeserializeOwned>(text: &str, source: &Path) -> Result<T> {
    let value: Value = serde_json::from_str(text).map_err(|e| IoError::json(source, &e))?;
    // Straight from the text, so a value of the wrong type is reported with its line.
    let config: T = serde_json::from_str(text).map_err(|e| misspelt_for_missing(&value, source, &e))?;
    check_keys(&value, &config, source)?;
    Ok(config)
}

/// Turns serde's own key errors into [`IoError::UnknownKey`] with the key's full dotted path:
/// - `unknown field X` (a struct with `deny_unknown_fields`): the path of `X` in the text, with
///   the closest of the fields serde expected as the hint;
/// - `missing field X`: when some object of the text lacks `X` but has a key spelled alike,
///   that key is the real mistake (a typo of a required field).
///
/// Any other error stands, with its line and column.
fn misspelt_for_missing(given: &Value, source: &Path, e: &serde_json::Error) -> IoError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        if let Some(key) = path_of(given, field, "") {
            let hint = expected
                .iter()
                .map(|c| (distance(field, c), *c))
                .filter(|(d, c)| *d <= 2.max(c.len() / 4))
                .min()
                .map(|(_, c)| match key.rsplit_once('.') {
                    Some((parent, _)) => join(parent, c),
                    None => c.to_owned(),
                });
            return IoError::UnknownKey {
                path: source.to_owned(),
                key,
                hint,
            };
        }
    }
    let missing = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    if let Some(field) = missing {
        if let Some(key) = misspelt(given, field, "") {
            return IoError::UnknownKey {
                path: source.to_owned(),
                hint: Some(match key.rsplit_once('.') {
                    Some((parent, _)) => join(parent, field),
                    None => field.to_owned(),
                }),
                key,
            };
        }
    }
    IoError::json(source, e)
}

/// The dotted path of the first key named `field` (depth first, in document order).
fn path_of(given: &Value, field: &str, prefix: &str) -> Option<String> {
    match given {
        Value::Object(map) => {
            if map.contains_key(field) {
                return Some(join(prefix, field));
            }
            map.iter().find_map(|(k, v)| path_of(v, field, &join(prefix, k)))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| path_of(v, field, &join(prefix, &i.to_string()))),
        _ => None,
    }
}

/// The dotted path of a key spelled like `field` in an object that lacks `field`.
fn misspelt(given: &Value, field: &str, prefix: &str) -> Option<String> {
    match given {
        Value::Object(map) => {
            if !map.contains_key(field) {
                if let Some(k) = map.keys().find(|k| distance(k, field) <= 2) {
                    return Some(join(prefix, k));
                }
            }
            map.iter().find_map(|(k, v)| misspelt(v, field, &join(prefix, k)))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| misspelt(v, field, &join(prefix, &i.to_string()))),
        _ => None,
    }
}

fn check_keys<T: Serialize>(given: &Value, config: &T, source: &Path) -> Result<()> {
    let known = serde_json::to_value(config).map_err(|e| IoError::Serialise {
        path: source.to_owned(),
        message: e.to_string(),
    })?;
    match first_unknown(given, &known, "") {
        Some((key, hint)) => Err(IoError::UnknownKey {
            path: source.to_owned(),
            key,
            hint,
        }),
        None => Ok(()),
    }
}

/// Reads a configuration file (see [`parse_config`]).
///
/// # Errors
/// An unreadable file, or as [`parse_config`].
pub fn read_config<T: Serialize + DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(IoError::io(path))?;
    parse_config(&text, path)
}

/// Writes a configuration as pretty JSON, atomically (what [`read_config`] reads back).
///
/// # Errors
/// As [`crate::write_json`].
pub fn write_config<T: Serialize>(path: &Path, config: &T) -> Result<()> {
    crate::write_json(path, config)
}

/// Applies `key=value` overrides with dotted keys (`optim.lr=1e-3`,
/// `student.backbone.base_width=32`). A value is read as JSON, or taken as a string when it is
/// not JSON (`loss.mode=identity_only`); a JSON object replaces a whole section
/// (`student.backbone={"arch":"mobilefacenet"}`). Each key must exist, and the result is
/// checked as strictly as a file.
///
/// # Errors
/// [`IoError::Override`] for a malformed override or a value of the wrong type,
/// [`IoError::UnknownKey`] for a key that does not exist.
///
/// # Examples
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Optim { lr: f64, name: String }
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Config { optim: Optim }
/// let c = Config { optim: Optim { lr: 0.1, name: "sgd".into() } };
/// let c = face_io::apply_overrides(&c, &["optim.lr=1e-3".into(), "optim.name=adamw".into()])?;
/// assert_eq!((c.optim.lr, c.optim.name.as_str()), (1e-3, "adamw"));
/// let err = face_io::apply_overrides(&c, &["optim.momentum=0.9".into()]).unwrap_err();
/// assert_eq!(err.to_string(), "<override>: unknown key `optim.momentum`");
/// # Ok::<(), face_io::IoError>(())
/// ```
pub fn apply_overrides<T: Serialize + DeserializeOwned>(config: &T, overrides: &[String]) -> Result<T> {
    let source = Path::new(OVERRIDE_SOURCE);
    let mut root = serde_json::to_value(config).map_err(|e| IoError::Serialise {
        path: source.to_owned(),
        message: e.to_string(),
    })?;
    for text in overrides {
        let bad = |message: String| IoError::Override {
            text: text.clone(),
            message,
        };
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| bad("expected key=value".into()))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(bad(format!("`{key}` is not a dotted key")));
        }
        let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        let parts: Vec<&str> = key.split('.').collect();
        let mut node = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let here = parts[..i].join(".");
            let obj = node
                .as_object_mut()
                .ok_or_else(|| bad(format!("`{here}` is a value, not a section")))?;
            if !obj.contains_key(*part) {
                let hint = obj
                    .keys()
                    .map(|c| (distance(part, c), c))
                    .filter(|(d, c)| *d <= 2.max(c.len() / 4))
                    .min()
                    .map(|(_, c)| join(&here, c));
                return Err(IoError::UnknownKey {
                    path: source.to_owned(),
                    key: key.to_owned(),
                    hint,
                });
            }
            if i + 1 == parts.len() {
                obj.insert((*part).to_owned(), value.clone());
                break;
            }
            node = obj
                .get_mut(*part)
                .ok_or_else(|| bad(format!("`{key}` vanished while applying it")))?;
        }
        // Each override is checked on its own, so the error names the one that is wrong.
        from_value_strict::<T>(root.clone(), source).map_err(|e| match e {
            IoError::Json { message, .. } => bad(message),
            other => other,
        })?;
    }
    from_value_strict(root, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "arch", rename_all = "snake_case")]
    enum Backbone {
        Small(Small),
        Wide { width: usize, depth: usize },
    }

    /// Like Burn's derived configs: no `deny_unknown_fields`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Small {
        width: usize,
        #[serde(default)]
        dropout: f64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Config {
        backbone: Backbone,
        lr: f64,
        betas: (f64, f64),
        steps: Option<u64>,
        layers: Vec<Small>,
    }

    impl Default for Config {
        fn default() -> Self {
            Self {
                backbone: Backbone::Small(Small {
                    width: 16,
                    dropout: 0.0,
                }),
                lr: 0.1,
                betas: (0.9, 0.99),
                steps: None,
                layers: vec![Small {
                    width: 1,
                    dropout: 0.0,
                }],
            }
        }
    }

    fn parse(text: &str) -> Result<Config> {
        parse_config(text, Path::new("c.json"))
    }

    fn unknown(r: Result<Config>) -> String {
        match r {
            Err(IoError::UnknownKey { key, .. }) => key,
            other => panic!("expected an unknown key, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_refused_at_every_depth() {
        assert_eq!(unknown(parse(r#"{"lr": 1, "lrr": 2}"#)), "lrr");
        assert_eq!(
            unknown(parse(
                r#"{"backbone": {"arch": "small", "width": 8, "widht": 64}}"#
            )),
            "backbone.widht"
        );
        assert_eq!(
            unknown(parse(r#"{"layers": [{"width": 1}, {"width": 2, "depht": 3}]}"#)),
            "layers.1.depht"
        );
        assert_eq!(
            unknown(parse(
                r#"{"backbone": {"arch": "wide", "width": 8, "depth": 2, "dropout": 0.1}}"#
            )),
            "backbone.dropout"
        );
        let ok = parse(r#"{"backbone": {"arch": "small", "width": 8}, "steps": 5}"#).unwrap();
        assert_eq!(
            ok.backbone,
            Backbone::Small(Small {
                width: 8,
                dropout: 0.0
            })
        );
        assert_eq!((ok.steps, ok.lr), (Some(5), 0.1));
    }

    /// Like a Burn-derived config: every field required by its `Deserialize`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Strict {
        base_width: usize,
        depth: usize,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Denying {
        lr: f64,
        steps: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Outer {
        optim: Denying,
    }

    #[test]
    fn serdes_own_unknown_field_gets_its_path() {
        let e =
            parse_config::<Outer>(r#"{"optim": {"lr": 1, "stesp": 2}}"#, Path::new("o.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "o.json: unknown key `optim.stesp` (did you mean `optim.steps`?)"
        );
        let e = apply_overrides(&Outer::default(), &["optim.lrr=1".into()]).unwrap_err();
        assert!(e.to_string().contains("optim.lrr"), "{e}");
    }

    #[test]
    fn a_misspelt_required_field_is_named() {
        let e = parse_config::<Vec<Strict>>(
            r#"[{"base_width": 1, "depth": 2}, {"base_widht": 1, "depth": 2}]"#,
            Path::new("s.json"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.json: unknown key `1.base_widht` (did you mean `1.base_width`?)"
        );
        // A field that is simply missing stays a missing field.
        let e = parse_config::<Strict>(r#"{"depth": 2}"#, Path::new("s.json")).unwrap_err();
        assert!(e.to_string().contains("missing field `base_width`"), "{e}");
    }

    #[test]
    fn hints_and_positions() {
        let e = parse(r#"{"backbone": {"arch": "small", "widht": 8, "width": 3}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.json: unknown key `backbone.widht` (did you mean `backbone.width`?)"
        );
        let e = parse("{\n  \"lr\": \"fast\"\n}").unwrap_err();
        match e {
            IoError::Json { line, .. } => assert_eq!(line, 2),
            other => panic!("{other}"),
        }
        assert!(matches!(parse("{"), Err(IoError::Json { .. })));
    }

    #[test]
    fn overrides_are_checked_as_strictly() {
        let c = Config::default();
        let o = |s: &[&str]| apply_overrides(&c, &s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        let d = o(&["lr=0.5", "steps=10", "backbone.width=32"]).unwrap();
        assert_eq!((d.lr, d.steps), (0.5, Some(10)));
        assert_eq!(
            d.backbone,
            Backbone::Small(Small {
                width: 32,
                dropout: 0.0
            })
        );
        // A whole section as JSON switches the variant.
        let w = o(&[r#"backbone={"arch":"wide","width":4,"depth":2}"#]).unwrap();
        assert_eq!(w.backbone, Backbone::Wide { width: 4, depth: 2 });
        // Switching the tag alone leaves the old variant's keys, which the new one lacks.
        assert!(matches!(
            o(&["backbone.arch=wide"]),
            Err(IoError::Override { .. } | IoError::UnknownKey { .. })
        ));
        assert!(matches!(o(&["lrx=1"]), Err(IoError::UnknownKey { ref key, .. }) if key == "lrx"));
        assert!(matches!(o(&["lr.x=1"]), Err(IoError::Override { .. })));
        assert!(matches!(o(&["lr"]), Err(IoError::Override { .. })));
        assert!(matches!(o(&["lr=fast"]), Err(IoError::Override { .. })));
        assert!(matches!(o(&["backbone..width=1"]), Err(IoError::Override { .. })));
    }

    #[test]
    fn every_section_of_the_test_config_is_strict() {
        let s = check_every_section(&Config::default()).unwrap();
        assert_eq!(s, ["", "backbone"]);
    }

    #[test]
    fn distance_is_levenshtein() {
        assert_eq!(distance("widht", "width"), 2);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("lr", "lr"), 0);
    }
}
