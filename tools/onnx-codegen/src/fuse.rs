//! Routes burn-onnx's generated convolutions through face-nets' fused operations.
//!
//! burn-onnx writes one statement per ONNX node, `let NAME_out1 = self.NAME.forward(ARG);`.
//! This pass rewrites, line by line:
//!
//! - `self.convN.forward(a)` followed by `self.preluK.forward(convN_out1)`, where the conv's
//!   output is used by that PReLU alone, into one
//!   `face_nets::ops::conv2d_fused(&self.convN, None, a, None, Activation::PRelu(&self.preluK))`;
//! - every other `self.convN.forward(a)` into `face_nets::ops::conv2d(&self.convN, a)`.
//!
//! Nothing else changes, so the graph computes what it did (the fused calls are checked against
//! the composed ones by face-nets' tests, and the teachers against onnxruntime).

/// The rewritten source, and how many convolutions were routed and fused.
pub fn fuse(src: &str) -> (String, usize, usize) {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let (mut routed, mut fused) = (0, 0);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some(conv) = module_call(line).filter(|c| c.module.starts_with("conv")) else {
            out.push(line.to_owned());
            i += 1;
            continue;
        };
        let next = lines.get(i + 1).and_then(|l| module_call(l));
        let used_once = src.matches(&format!("{}_out1", conv.module)).count() == 2;
        match next {
            Some(p) if p.module.starts_with("prelu") && p.arg == format!("{}_out1", conv.module) && used_once => {
                out.push(format!(
                    "{}let {} = face_nets::ops::conv2d_fused(&self.{}, None, {}, None, face_nets::ops::Activation::PRelu(&self.{}));",
                    p.indent, p.out, conv.module, conv.arg, p.module
                ));
                fused += 1;
                i += 2;
            }
            _ => {
                out.push(format!(
                    "{}let {} = face_nets::ops::conv2d(&self.{}, {});",
                    conv.indent, conv.out, conv.module, conv.arg
                ));
                routed += 1;
                i += 1;
            }
        }
    }
    let mut text = out.join("\n");
    if src.ends_with('\n') {
        text.push('\n');
    }
    (text, routed, fused)
}

/// `let OUT = self.MODULE.forward(ARG);`, split into its parts.
struct Call<'a> {
    indent: &'a str,
    out: &'a str,
    module: &'a str,
    arg: &'a str,
}

fn module_call(line: &str) -> Option<Call<'_>> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let rest = trimmed.strip_prefix("let ")?;
    let (out, rest) = rest.split_once(" = self.")?;
    let (module, rest) = rest.split_once(".forward(")?;
    let arg = rest.strip_suffix(");")?;
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let value = plain(arg.strip_suffix(".clone()").unwrap_or(arg));
    (plain(out) && plain(module) && value).then_some(Call { indent, out, module, arg })
}

#[cfg(test)]
mod tests {
    use super::fuse;

    #[test]
    fn fuses_a_conv_used_once_by_a_prelu_and_routes_the_rest() {
        let src = "        let conv2d1_out1 = self.conv2d1.forward(input);\n\
                   \x20       let prelu1_out1 = self.prelu1.forward(conv2d1_out1);\n\
                   \x20       let conv2d2_out1 = self.conv2d2.forward(prelu1_out1.clone());\n\
                   \x20       let prelu2_out1 = self.prelu2.forward(conv2d2_out1.clone());\n\
                   \x20       let add1_out1 = conv2d2_out1.add(prelu2_out1);\n\
                   \x20       let relu1_out1 = burn::tensor::activation::relu(add1_out1);\n";
        let (out, routed, fused) = fuse(src);
        assert_eq!((routed, fused), (1, 1));
        assert!(out.contains(
            "let prelu1_out1 = face_nets::ops::conv2d_fused(&self.conv2d1, None, input, None, face_nets::ops::Activation::PRelu(&self.prelu1));"
        ));
        assert!(out.contains("let conv2d2_out1 = face_nets::ops::conv2d(&self.conv2d2, prelu1_out1.clone());"));
        assert!(out.contains("let prelu2_out1 = self.prelu2.forward(conv2d2_out1.clone());"));
        assert!(out.ends_with("relu(add1_out1);\n"));
    }
}
