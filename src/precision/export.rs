//! A precision plan in the words of other tools (`trtlens convert --format autocast|trtexec`):
//!
//! - **`ModelOpt` `AutoCast`** (`python -m modelopt.onnx.autocast`): the nodes the plan keeps FP32
//!   as `--nodes_to_exclude` (anchored, escaped regexes: `AutoCast` matches node names with
//!   Python's `re.match`) and whole op types as `--op_types_to_exclude` (an op type goes there when
//!   the plan selects it by op type and every node of that type stays FP32). `--data_max inf` turns
//!   off `AutoCast`'s own reference-run rule (which would keep more nodes FP32 than the plan);
//!   `--init_max` follows the plan's out-of-range policy (65504 for `keep-fp32`, else `inf`, where
//!   `AutoCast` clamps weights into the FP16 range as `saturate` does); `--keep_io_types` because
//!   the Cast rewrite keeps graph inputs and outputs in their declared types.
//! - **`TensorRT` ≤ 10 `trtexec`** (weakly typed builds): `--fp16 --precisionConstraints=obey
//!   --layerPrecisions=... --layerOutputTypes=...` naming every node that computes on float values
//!   with the precision the plan gives it (names in single quotes, which `trtexec` strips, so names
//!   with `:` work; the ONNX parser names layers after their nodes). Nodes without float values
//!   (shape and index computations) are left to `TensorRT`. `TensorRT` 11 has no such flags: build
//!   the mixed-precision ONNX (`--format onnx`) strongly typed instead.
//!
//! Both are computed from the Cast rewrite itself ([`super::convert`]), so they name exactly the
//! nodes `cpu-fp16` runs in each precision. Nodes the exports cannot name (no name in the model,
//! or a name holding `,` or `'` for `trtexec`) are listed as warnings, never dropped silently.

use std::collections::BTreeSet;

use super::{KeepReason, OutOfRangePolicy, Plan, Precision, Selector};
use crate::error::{Error, Result};
use crate::model::Model;

/// Text for another tool, and what it could not express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolArgs {
    /// The command line (one line, shell-quoted).
    pub text: String,
    /// Nodes computing in FP16 (or BF16) per the rewrite.
    pub low_precision: usize,
    /// Nodes computing in FP32 that the arguments name.
    pub fp32: usize,
    /// What could not be said.
    pub warnings: Vec<String>,
}

/// Quote one argument for a POSIX shell: as is when it holds only safe characters, in double quotes
/// when nothing in it is special there (`$`, `` ` ``, `\`, `"`, `!`), else in single quotes (`'`
/// written as `'\''`).
#[must_use]
pub fn sh_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_=./:,+@%^".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        return arg.to_string();
    }
    if !arg.contains(['$', '`', '\\', '"', '!']) {
        return format!("\"{arg}\"");
    }
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// A regex matching exactly `name` in Python's `re` (the characters `re.escape` escapes).
#[must_use]
pub fn python_exact_regex(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    out.push('^');
    for c in name.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

/// Node precisions as the Cast rewrite decides them, and the rewrite's report.
struct Decided {
    /// (display name, op type, precision, has a real name) in node order; the precision is `None`
    /// for nodes without float values (shape, index and integer computations).
    nodes: Vec<(String, String, Option<Precision>, bool)>,
    report: super::ConvertReport,
}

fn decide(model: &Model, plan: &Plan) -> Result<Decided> {
    if plan.default == Precision::Bf16 || plan.overrides.iter().any(|o| o.precision == Precision::Bf16) {
        return Err(Error::usage("bf16 plans cannot be exported yet (the Cast rewrite supports fp16 and fp32)"));
    }
    let (_, report) = super::convert_to_bytes(model, plan)?;
    // Nodes that compute on float values: those the all-FP16 rewrite (saturating constants) makes
    // FP16, or keeps FP32 only because of the op's type constraints.
    let all16 = Plan { default: Precision::Fp16, overrides: Vec::new(), out_of_range: OutOfRangePolicy::Saturate };
    let (_, all) = super::convert_to_bytes(model, &all16)?;
    let floaty: BTreeSet<String> = all
        .nodes_fp16
        .iter()
        .cloned()
        .chain(
            all.nodes_fp32
                .iter()
                .filter(|k| matches!(k.reason, KeepReason::OpRejectsFloat16 | KeepReason::OutOfRangeConstant))
                .map(|k| k.node.clone()),
        )
        .collect();
    let fp16: BTreeSet<&str> = report.nodes_fp16.iter().map(String::as_str).collect();
    let nodes = model
        .graph
        .nodes
        .iter()
        .map(|n| {
            let name = n.display_name();
            let precision = if fp16.contains(name.as_str()) {
                Some(Precision::Fp16)
            } else if floaty.contains(&name) {
                Some(Precision::Fp32)
            } else {
                None
            };
            (name, n.op_type.clone(), precision, !n.name.is_empty())
        })
        .collect();
    Ok(Decided { nodes, report })
}

/// `trtexec`'s word for an element type (`None` for types it has no word for).
fn trtexec_type(dtype: crate::tensor::DType) -> Option<&'static str> {
    use crate::tensor::DType;
    Some(match dtype {
        DType::Float32 => "fp32",
        DType::Float16 => "fp16",
        DType::Bfloat16 => "bf16",
        DType::Int32 => "int32",
        DType::Int64 => "int64",
        DType::Int8 => "int8",
        DType::Uint8 => "uint8",
        DType::Bool => "bool",
        _ => return None,
    })
}

/// The `AutoCast` command line converting `model_arg` (the model path as the user will pass it)
/// to the plan's mixed precision, written to `output_arg`.
pub fn autocast_args(model: &Model, plan: &Plan, model_arg: &str, output_arg: &str) -> Result<ToolArgs> {
    let d = decide(model, plan)?;
    let mut warnings = Vec::new();
    // Op types the plan keeps FP32 as a whole.
    let by_type: BTreeSet<&str> = plan
        .overrides
        .iter()
        .filter_map(|o| match &o.selector {
            Selector::OpType(t) if o.precision == Precision::Fp32 => Some(t.as_str()),
            _ => None,
        })
        .filter(|t| {
            d.nodes.iter().filter(|n| n.1 == *t).all(|n| n.2 != Some(Precision::Fp16))
                && d.nodes.iter().any(|n| n.1 == *t && n.2 == Some(Precision::Fp32))
        })
        .collect();
    let mut nodes = Vec::new();
    let mut fp32 = 0;
    for (name, op, precision, named) in &d.nodes {
        if *precision != Some(Precision::Fp32) {
            continue;
        }
        fp32 += 1;
        if by_type.contains(op.as_str()) {
            continue;
        }
        if *named {
            nodes.push(python_exact_regex(name));
        } else {
            warnings.push(format!(
                "node {name} has no name in the model, so --nodes_to_exclude cannot select it (name the node, or keep its op type FP32)"
            ));
        }
    }
    let init_max = match plan.out_of_range {
        OutOfRangePolicy::KeepFp32 => "65504",
        OutOfRangePolicy::Saturate => "inf",
        OutOfRangePolicy::Ieee => {
            warnings.push(
                "--out-of-range ieee has no AutoCast equivalent: AutoCast clamps weights into the FP16 range (as saturate does)"
                    .into(),
            );
            "inf"
        }
    };
    let mut args: Vec<String> =
        ["python", "-m", "modelopt.onnx.autocast", "--onnx_path", model_arg, "--output_path", output_arg]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
    args.extend(
        ["--low_precision_type", "fp16", "--keep_io_types", "--data_max", "inf", "--init_max", init_max]
            .map(String::from),
    );
    if !nodes.is_empty() {
        args.push("--nodes_to_exclude".into());
        args.extend(nodes);
    }
    if !by_type.is_empty() {
        args.push("--op_types_to_exclude".into());
        args.extend(by_type.iter().map(|t| (*t).to_string()));
    }
    let low = d.nodes.iter().filter(|n| n.2 == Some(Precision::Fp16)).count();
    Ok(ToolArgs {
        text: args.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" "),
        low_precision: low,
        fp32,
        warnings,
    })
}

/// The `trtexec` (`TensorRT` ≤ 10) flags that build the plan's precisions into a weakly typed engine.
pub fn trtexec_args(model: &Model, plan: &Plan) -> Result<ToolArgs> {
    let d = decide(model, plan)?;
    let mut warnings = Vec::new();
    let mut precisions = Vec::new();
    let mut outputs = Vec::new();
    let (mut low, mut fp32) = (0, 0);
    for (name, _, precision, named) in &d.nodes {
        let Some(p) = precision else { continue };
        if !named {
            warnings.push(format!(
                "node {name} has no name in the model; TensorRT names its layer itself, so the flags cannot select it"
            ));
            continue;
        }
        if name.contains([',', '\'']) {
            warnings.push(format!(
                "node '{name}': --layerPrecisions cannot name it (its syntax splits on ',' and strips ')"
            ));
            continue;
        }
        let word = if *p == Precision::Fp16 { "fp16" } else { "fp32" };
        if *p == Precision::Fp16 {
            low += 1;
        } else {
            fp32 += 1;
        }
        precisions.push(format!("'{name}':{word}"));
        // Output types as the rewrite stores them (an index output of TopK stays int64).
        let node = model.graph.nodes.iter().find(|n| n.display_name() == *name);
        let types: Option<Vec<&str>> = node.and_then(|n| {
            n.outputs
                .iter()
                .map(|o| d.report.tensors.get(o).and_then(super::TensorHome::dtype).and_then(trtexec_type))
                .collect()
        });
        if let Some(types) = types.filter(|t| !t.is_empty()) {
            outputs.push(format!("'{name}':{}", types.join("+")));
        }
    }
    let mut args = vec!["--fp16".to_string(), "--precisionConstraints=obey".to_string()];
    if !precisions.is_empty() {
        args.push(format!("--layerPrecisions={}", precisions.join(",")));
    }
    if !outputs.is_empty() {
        args.push(format!("--layerOutputTypes={}", outputs.join(",")));
    }
    Ok(ToolArgs {
        text: args.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" "),
        low_precision: low,
        fp32,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_regexes() {
        assert_eq!(sh_quote("--fp16"), "--fp16");
        assert_eq!(sh_quote("a b"), "\"a b\"");
        assert_eq!(sh_quote("--x='a:0':fp16"), "\"--x='a:0':fp16\"");
        assert_eq!(sh_quote("it's $HOME"), "'it'\\''s $HOME'");
        assert_eq!(python_exact_regex("/model/fc1/MatMul"), "^/model/fc1/MatMul$");
        assert_eq!(python_exact_regex("a.b(c)+1"), "^a\\.b\\(c\\)\\+1$");
        assert!(
            regex::Regex::new(&python_exact_regex("x[0]*y")).is_ok_and(|r| r.is_match("x[0]*y") && !r.is_match("x0y"))
        );
    }
}
