//! Text helpers shared by the terminal table and the inspector: fitting names into a width (long
//! scoped names keep their informative tail), the scope prefix every name of a model shares, and
//! file names made from tensor names.

/// `s` in at most `width` characters, eliding the front with `…` (the tail of
/// `/model.22/cv3.2/cv3.2.1/conv/Conv_output_0` tells rows apart, its head does not).
#[must_use]
pub fn elide_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let tail: String = s.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

/// `s` in at most `width` characters, eliding the end with `…` (op types, labels).
#[must_use]
pub fn elide_right(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let head: String = s.chars().take(width - 1).collect();
    format!("{head}…")
}

/// The scope prefix every name shares, ending at a `/` (`jax2tf_infer_/pjit_infer_/Net/`), so that
/// dropping it leaves whole scope components. Empty when there are fewer than two names, when
/// dropping it would leave a name empty, or when it is only slashes.
#[must_use]
pub fn shared_scope<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut it = names.into_iter();
    let Some(first) = it.next() else { return String::new() };
    let mut common = first.len();
    let mut shortest = first.len();
    let mut count = 1;
    for n in it {
        count += 1;
        shortest = shortest.min(n.len());
        common = first.bytes().zip(n.bytes()).take(common).take_while(|(a, b)| a == b).count();
        if common == 0 {
            break;
        }
    }
    if count < 2 {
        return String::new();
    }
    // Leave at least one character of every name; back to a char boundary; then to the last '/'.
    let mut end = common.min(shortest.saturating_sub(1));
    while end > 0 && !first.is_char_boundary(end) {
        end -= 1;
    }
    match first[..end].rfind('/') {
        // A bare "/" (PyTorch names all start with one) is not worth a title.
        Some(slash) if !first[..slash].trim_matches('/').is_empty() => first[..=slash].to_string(),
        _ => String::new(),
    }
}

/// A file-name-safe form of a tensor name: `[A-Za-z0-9._-]` kept, everything else `_`, at most 80
/// characters, plus 8 hex digits of its hash when anything changed (so two names never collide).
#[must_use]
pub fn file_stem(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    let trimmed = cleaned.trim_start_matches(['.', '_']);
    let short: String = trimmed.chars().take(80).collect();
    if short == name && !short.is_empty() {
        return short;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(name.as_bytes());
    let hex: String = digest.iter().take(4).fold(String::new(), |mut s, b| {
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
        s
    });
    if short.is_empty() { hex } else { format!("{short}-{hex}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elision_keeps_the_informative_end() {
        assert_eq!(elide_left("/model/decoder/Conv_output_0", 10), "…_output_0");
        assert_eq!(elide_left("short", 10), "short");
        assert_eq!(elide_left("abc", 0), "");
        assert_eq!(elide_left("abc", 1), "…");
        assert_eq!(elide_right("BatchNormalization", 6), "Batch…");
        assert_eq!(elide_left("αβγδε", 3), "…δε", "characters, not bytes");
    }

    #[test]
    fn the_shared_scope_ends_at_a_slash() {
        let names = [
            "jax2tf_infer_/pjit_infer_/Net/LayerNorm_1/Sum_1:0",
            "jax2tf_infer_/pjit_infer_/Net/LayerNorm_1/mul:0",
            "jax2tf_infer_/pjit_infer_/Net/Dense_0/MatMul:0",
        ];
        assert_eq!(shared_scope(names), "jax2tf_infer_/pjit_infer_/Net/");
        assert_eq!(shared_scope(["/model.0/conv/Conv_output_0", "/model.0/act/Mul_output_0"]), "/model.0/");
        assert_eq!(shared_scope(["a/b", "a/bc"]), "a/", "a common partial component is kept");
        assert_eq!(shared_scope(["logits", "probs"]), "");
        assert_eq!(shared_scope(["/model.0/conv/Conv_output_0", "/model.1/act/Mul_output_0"]), "", "not just '/'");
        assert_eq!(shared_scope(["only/one"]), "");
        assert_eq!(shared_scope(["x/", "x/"]), "", "no name is left empty");
        assert_eq!(shared_scope(["s/a", "s/"]), "", "no name is left empty");
        assert_eq!(shared_scope(["é/a", "é/b"]), "é/");
    }

    #[test]
    fn file_stems_are_safe_and_distinct() {
        assert_eq!(file_stem("logits"), "logits");
        let a = file_stem("/model/fc1/MatMul_output_0");
        let b = file_stem("_model_fc1_MatMul_output_0");
        assert!(a.starts_with("model_fc1_MatMul_output_0-"), "{a}");
        assert_ne!(a, b);
        assert!(file_stem("scope/Op:0").chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
        assert_eq!(file_stem("///").len(), 8);
        assert!(file_stem(&"x".repeat(300)).len() <= 89);
    }
}
