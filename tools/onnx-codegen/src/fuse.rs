//! Routes burn-onnx's generated convolutions through face-nets' fused operations.
//!
//! burn-onnx writes one statement per ONNX node, `let NAME_out1 = self.NAME.forward(ARG);` for a
//! module and `let NAME_out1 = A.mul(B);` / `A.add(B)` / `burn::tensor::activation::relu(A)` for
//! element-wise nodes. This pass rewrites, statement by statement:
//!
//! - a convolution whose output only a PReLU reads, into one
//!   `face_nets::ops::conv2d_fused(&self.convN, None, a, None, Activation::PRelu(&self.preluK))`;
//! - a convolution whose output only feeds `· scale + shift` (an affine layer exported as `Mul`
//!   and `Add` by constant tensors), then optionally `+ residual`, then optionally a ReLU, each
//!   value read by the next step alone, into one
//!   `face_nets::ops::conv2d_affine(&self.convN, scale, shift, a, residual, act)`, written where
//!   the chain's last statement was (the residual may be computed between);
//! - every other convolution into `face_nets::ops::conv2d(&self.convN, a)`;
//! - `self.maxpool2dN.forward(a)` and `self.averagepool2dN.forward(a)` into
//!   `face_nets::ops::max_pool2d(&self.maxpool2dN, a)` and `face_nets::ops::avg_pool2d(…)`.
//!
//! Nothing else changes, so the graph computes what it did (the fused calls are checked against
//! the composed ones by face-nets' tests, and the teachers against onnxruntime). A statement the
//! pass wrote itself (`face_nets::ops::conv2d(…)`) is read as a convolution again, so the pass
//! can be run over files it already rewrote.

/// How many convolutions the pass fused or routed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Convolution + PReLU.
    pub prelu: usize,
    /// Convolution + affine (+ residual) (+ ReLU).
    pub affine: usize,
    /// Convolutions routed through `conv2d` alone.
    pub routed: usize,
    /// Max and average pools routed through face-nets' pools.
    pub pools: usize,
}

/// The rewritten source and what was rewritten.
pub fn fuse(src: &str) -> (String, Counts) {
    let lines: Vec<&str> = src.lines().collect();
    let mut out: Vec<Option<String>> = lines.iter().map(|l| Some((*l).to_owned())).collect();
    let mut counts = Counts::default();
    for (i, line) in lines.iter().enumerate() {
        if let Some((p, op)) = module_call(line).and_then(|p| {
            let op = if p.module.starts_with("maxpool") {
                "max_pool2d"
            } else if p.module.starts_with("averagepool") {
                "avg_pool2d"
            } else {
                return None;
            };
            Some((p, op))
        }) {
            out[i] = Some(format!(
                "{}let {} = face_nets::ops::{op}(&self.{}, {});",
                p.indent, p.out, p.module, p.arg
            ));
            counts.pools += 1;
            continue;
        }
        let Some(conv) = conv_call(line) else { continue };
        if let Some(p) = lines.get(i + 1).and_then(|l| module_call(l)).filter(|p| {
            p.module.starts_with("prelu") && p.arg == conv.out && uses(src, conv.out) == 2
        }) {
            out[i] = None;
            out[i + 1] = Some(format!(
                "{}let {} = face_nets::ops::conv2d_fused(&self.{}, None, {}, None, face_nets::ops::Activation::PRelu(&self.{}));",
                p.indent, p.out, conv.module, conv.arg, p.module
            ));
            counts.prelu += 1;
        } else if let Some(chain) = affine_chain(src, &lines, i, &conv) {
            for k in &chain.consumed {
                out[*k] = None;
            }
            let residual = chain.residual.map_or("None".to_owned(), |r| format!("Some({r})"));
            let act = if chain.relu { "Relu" } else { "Identity" };
            out[chain.end] = Some(format!(
                "{}let {} = face_nets::ops::conv2d_affine(&self.{}, {}, {}, {}, {residual}, face_nets::ops::Activation::{act});",
                conv.indent, chain.out, conv.module, chain.scale, chain.shift, conv.arg
            ));
            counts.affine += 1;
        } else {
            out[i] = Some(format!(
                "{}let {} = face_nets::ops::conv2d(&self.{}, {});",
                conv.indent, conv.out, conv.module, conv.arg
            ));
            counts.routed += 1;
        }
    }
    let mut text = out.into_iter().flatten().collect::<Vec<_>>().join("\n");
    if src.ends_with('\n') {
        text.push('\n');
    }
    (text, counts)
}

/// A convolution's affine chain: the statements it replaces and the values it reads.
struct Chain<'a> {
    /// Statements folded into the fused call (the convolution's first).
    consumed: Vec<usize>,
    /// The statement the fused call replaces (the chain's last).
    end: usize,
    out: &'a str,
    scale: &'a str,
    shift: &'a str,
    residual: Option<&'a str>,
    relu: bool,
}

/// Follows `y = conv(a)` through `y·scale`, `+ shift`, an optional `+ residual` and an optional
/// ReLU, each value read once, by the next statement. `None` when the first two steps are not
/// there, or when the convolution's input is cloned and also read by another statement before
/// the chain's end (moving the call there could then use it after a move; the chain's own
/// residual is read after the clone, in the same call).
fn affine_chain<'a>(src: &str, lines: &[&'a str], i: usize, conv: &Call<'a>) -> Option<Chain<'a>> {
    // the statement after `at` that reads `value`, when that is the value's only reader
    let next = |value: &str, at: usize| {
        (uses(src, value) == 2)
            .then(|| lines.iter().enumerate().skip(at + 1).find(|(_, l)| reads(l, value)))
            .flatten()
            .map(|(k, l)| (k, *l))
    };
    let (k_mul, l) = next(conv.out, i)?;
    let mul = binary(l).filter(|b| b.method == "mul" && b.lhs == conv.out && plain(b.rhs))?;
    let (k_add, l) = next(mul.out, k_mul)?;
    let add = binary(l).filter(|b| b.method == "add" && b.lhs == mul.out && plain(b.rhs))?;
    let mut chain = Chain {
        consumed: vec![i, k_mul],
        end: k_add,
        out: add.out,
        scale: mul.rhs,
        shift: add.rhs,
        residual: None,
        relu: false,
    };
    if let Some((k, l)) = next(chain.out, chain.end) {
        if let Some(b) = binary(l).filter(|b| b.method == "add") {
            let other = if b.lhs == chain.out { b.rhs } else { b.lhs };
            if other != chain.out && value(other) {
                chain.consumed.push(chain.end);
                (chain.end, chain.out, chain.residual) = (k, b.out, Some(other));
            }
        }
    }
    if let Some((k, l)) = next(chain.out, chain.end) {
        if let Some(out) = relu(l).filter(|r| r.1 == chain.out).map(|r| r.0) {
            chain.consumed.push(chain.end);
            (chain.end, chain.out, chain.relu) = (k, out, true);
        }
    }
    if let Some(base) = conv.arg.strip_suffix(".clone()") {
        let between = (i + 1..chain.end).filter(|k| !chain.consumed.contains(k));
        if between.into_iter().any(|k| reads(lines[k], base)) {
            return None;
        }
    }
    Some(chain)
}

/// `let OUT = self.MODULE.forward(ARG);`, split into its parts.
struct Call<'a> {
    indent: &'a str,
    out: &'a str,
    module: &'a str,
    arg: &'a str,
}

fn module_call(line: &str) -> Option<Call<'_>> {
    let (indent, out, rest) = statement(line)?;
    let (module, rest) = rest.strip_prefix("self.")?.split_once(".forward(")?;
    let arg = rest.strip_suffix(");")?;
    (plain(module) && value(arg)).then_some(Call { indent, out, module, arg })
}

/// A convolution as burn-onnx writes it, or as this pass routes it.
fn conv_call(line: &str) -> Option<Call<'_>> {
    if let Some(c) = module_call(line).filter(|c| c.module.starts_with("conv")) {
        return Some(c);
    }
    let (indent, out, rest) = statement(line)?;
    let (module, arg) = rest
        .strip_prefix("face_nets::ops::conv2d(&self.")?
        .strip_suffix(");")?
        .split_once(", ")?;
    (plain(module) && value(arg)).then_some(Call { indent, out, module, arg })
}

/// `let OUT = LHS.METHOD(RHS);`.
struct Binary<'a> {
    out: &'a str,
    lhs: &'a str,
    method: &'a str,
    rhs: &'a str,
}

fn binary(line: &str) -> Option<Binary<'_>> {
    let (_, out, rest) = statement(line)?;
    let (lhs, rest) = rest.split_once('.')?;
    let (method, rest) = rest.split_once('(')?;
    let rhs = rest.strip_suffix(");")?;
    (plain(lhs) && plain(method) && value(rhs)).then_some(Binary { out, lhs, method, rhs })
}

/// `let OUT = burn::tensor::activation::relu(ARG);` as `(OUT, ARG)`.
fn relu(line: &str) -> Option<(&str, &str)> {
    let (_, out, rest) = statement(line)?;
    let arg = rest
        .strip_prefix("burn::tensor::activation::relu(")?
        .strip_suffix(");")?;
    plain(arg).then_some((out, arg))
}

/// `let OUT = REST` as `(indent, OUT, REST)`.
fn statement(line: &str) -> Option<(&str, &str, &str)> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let (out, rest) = trimmed.strip_prefix("let ")?.split_once(" = ")?;
    plain(out).then_some((indent, out, rest))
}

fn plain(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A variable, or a variable's `.clone()`.
fn value(s: &str) -> bool {
    plain(s.strip_suffix(".clone()").unwrap_or(s))
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `line` contains the identifier `name` as a whole word.
fn reads(line: &str, name: &str) -> bool {
    uses(line, name) > 0
}

/// How many times the identifier `name` occurs in `text` as a whole word.
fn uses(text: &str, name: &str) -> usize {
    text.match_indices(name)
        .filter(|(at, _)| {
            let before = text[..*at].chars().next_back();
            let after = text[at + name.len()..].chars().next();
            !before.is_some_and(ident_char) && !after.is_some_and(ident_char)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::{fuse, Counts};

    #[test]
    fn fuses_a_conv_used_once_by_a_prelu_and_routes_the_rest() {
        let src = "        let conv2d1_out1 = self.conv2d1.forward(input);\n\
                   \x20       let prelu1_out1 = self.prelu1.forward(conv2d1_out1);\n\
                   \x20       let conv2d2_out1 = self.conv2d2.forward(prelu1_out1.clone());\n\
                   \x20       let prelu2_out1 = self.prelu2.forward(conv2d2_out1.clone());\n\
                   \x20       let add1_out1 = conv2d2_out1.add(prelu2_out1);\n\
                   \x20       let relu1_out1 = burn::tensor::activation::relu(add1_out1);\n";
        let (out, counts) = fuse(src);
        assert_eq!(counts, Counts { prelu: 1, affine: 0, routed: 1, pools: 0 });
        assert!(out.contains(
            "let prelu1_out1 = face_nets::ops::conv2d_fused(&self.conv2d1, None, input, None, face_nets::ops::Activation::PRelu(&self.prelu1));"
        ));
        assert!(out.contains("let conv2d2_out1 = face_nets::ops::conv2d(&self.conv2d2, prelu1_out1.clone());"));
        assert!(out.contains("let prelu2_out1 = self.prelu2.forward(conv2d2_out1.clone());"));
        assert!(out.ends_with("relu(add1_out1);\n"));
        assert_eq!(fuse(&out), (out.clone(), Counts { prelu: 0, affine: 0, routed: 1, pools: 0 }));
    }

    /// The age teacher's blocks: affine + ReLU; affine + residual + ReLU with the residual on
    /// either side of the add and computed between; affine alone, read by a pad.
    #[test]
    fn fuses_affine_chains_with_residual_and_relu() {
        let src = "\
    let conv2d1_out1 = face_nets::ops::conv2d(&self.conv2d1, x);
    let mul1_out1 = conv2d1_out1.mul(c1_out1);
    let add1_out1 = mul1_out1.add(c2_out1);
    let relu1_out1 = burn::tensor::activation::relu(add1_out1);
    let conv2d2_out1 = self.conv2d2.forward(relu1_out1.clone());
    let mul2_out1 = conv2d2_out1.mul(c3_out1);
    let add2_out1 = mul2_out1.add(c4_out1);
    let add3_out1 = add2_out1.add(relu1_out1);
    let relu2_out1 = burn::tensor::activation::relu(add3_out1);
    let conv2d3_out1 = self.conv2d3.forward(relu2_out1);
    let mul3_out1 = conv2d3_out1.mul(c5_out1);
    let add4_out1 = mul3_out1.add(c6_out1);
    let pool1_out1 = self.averagepool2d1.forward(relu9_out1);
    let add5_out1 = pool1_out1.add(add4_out1);
    let relu3_out1 = burn::tensor::activation::relu(add5_out1);
    let conv2d4_out1 = self.conv2d4.forward(relu3_out1);
    let mul4_out1 = conv2d4_out1.mul(c7_out1);
    let add6_out1 = mul4_out1.add(c8_out1);
    let pad1_out1 = add6_out1.pad(p);
";
        let (out, counts) = fuse(src);
        assert_eq!(counts, Counts { prelu: 0, affine: 4, routed: 0, pools: 1 });
        let want = "\
    let relu1_out1 = face_nets::ops::conv2d_affine(&self.conv2d1, c1_out1, c2_out1, x, None, face_nets::ops::Activation::Relu);
    let relu2_out1 = face_nets::ops::conv2d_affine(&self.conv2d2, c3_out1, c4_out1, relu1_out1.clone(), Some(relu1_out1), face_nets::ops::Activation::Relu);
    let pool1_out1 = face_nets::ops::avg_pool2d(&self.averagepool2d1, relu9_out1);
    let relu3_out1 = face_nets::ops::conv2d_affine(&self.conv2d3, c5_out1, c6_out1, relu2_out1, Some(pool1_out1), face_nets::ops::Activation::Relu);
    let add6_out1 = face_nets::ops::conv2d_affine(&self.conv2d4, c7_out1, c8_out1, relu3_out1, None, face_nets::ops::Activation::Identity);
    let pad1_out1 = add6_out1.pad(p);
";
        assert_eq!(out, want);
        assert_eq!(fuse(&out), (out.clone(), Counts::default()));
    }

    /// A value read twice, or a cloned input read again before the chain ends, stops the chain.
    #[test]
    fn leaves_chains_whose_values_are_shared() {
        let src = "\
    let conv2d1_out1 = self.conv2d1.forward(x.clone());
    let mul1_out1 = conv2d1_out1.mul(c1_out1);
    let y_out1 = x.add(c0_out1);
    let add1_out1 = mul1_out1.add(c2_out1);
    let conv2d2_out1 = self.conv2d2.forward(y_out1);
    let mul2_out1 = conv2d2_out1.mul(c3_out1);
    let add2_out1 = mul2_out1.add(c4_out1);
    let relu1_out1 = burn::tensor::activation::relu(add2_out1.clone());
    let z_out1 = add2_out1.add(relu1_out1);
";
        let (out, counts) = fuse(src);
        assert_eq!(counts, Counts { prelu: 0, affine: 1, routed: 1, pools: 0 });
        assert!(out.contains("let conv2d1_out1 = face_nets::ops::conv2d(&self.conv2d1, x.clone());"));
        assert!(out.contains(
            "let add2_out1 = face_nets::ops::conv2d_affine(&self.conv2d2, c3_out1, c4_out1, y_out1, None, face_nets::ops::Activation::Identity);"
        ));
        assert!(out.contains("let relu1_out1 = burn::tensor::activation::relu(add2_out1.clone());"));
    }
}
