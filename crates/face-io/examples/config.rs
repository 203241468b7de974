//! A configuration round trip: defaults written to a file, read back strictly, overridden from
//! the command line; a typo is refused with its path.
//!
//! ```text
//! cargo run -p face-io --example config -- --set optim.lr=0.01 --set model.width=64
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Model {
    width: usize,
    depth: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Optim {
    lr: f64,
    warmup_steps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
struct Config {
    model: Model,
    optim: Optim,
}

impl Default for Model {
    fn default() -> Self {
        Self { width: 16, depth: 18 }
    }
}

impl Default for Optim {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            warmup_steps: 20,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut overrides = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--set" => overrides.push(args.next().ok_or("--set needs key=value")?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let dir = std::env::temp_dir().join(format!("face-io-example-{}", std::process::id()));
    let path = dir.join("config.json");
    face_io::write_config(&path, &Config::default())?;
    let config: Config = face_io::read_config(&path)?;
    let config = face_io::apply_overrides(&config, &overrides)?;
    println!("{}", serde_json::to_string_pretty(&config)?);

    std::fs::write(&path, r#"{"model": {"widht": 64}}"#)?;
    match face_io::read_config::<Config>(&path) {
        Err(e) => println!("a typo is refused: {e}"),
        Ok(_) => return Err("the typo was accepted".into()),
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
