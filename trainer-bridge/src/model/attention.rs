//! Attention over packed sequences: each packed sample (or each image, in the vision tower) attends
//! only to itself, never across sample boundaries, and rotary position embeddings come from the
//! positions the shards store.
//!
//! Shape of the problem: a micro-batch is one flat stream of `T` tokens made of many segments (the
//! samples of every packed row, from `seq_lens`). A dense `T x T` block-diagonal mask would cost
//! memory quadratic in the whole batch; instead [`VarlenLayout`] gathers segments of similar length
//! into padded `[n, L]` groups, runs libtorch's fused `scaled_dot_product_attention` on each group
//! and scatters the results back. Padding is always on the right, so with a causal mask a real token
//! never sees a pad; groups without a causal mask (the vision tower) use exact lengths, so they have
//! no padding at all. Gathers and scatters are `index_select`s, whose backward passes are exact and
//! deterministic on the CPU. The result equals dense attention under the block-diagonal mask (tested
//! below).

use tch::{Kind, Tensor};

use super::params::Precision;
use crate::device::Placement;

/// How one group of equally padded segments is gathered from the flat stream.
#[derive(Debug)]
struct Group {
    /// `[n * len]` indices into the stream; index `T` is the zero row appended for padding.
    gather: Tensor,
    segments: i64,
    len: i64,
}

/// The grouping of a stream's segments, computed once per micro-batch and shared by every layer.
#[derive(Debug)]
pub struct VarlenLayout {
    tokens: i64,
    groups: Vec<Group>,
    /// `[T]`: where each token's output sits in the concatenated group outputs.
    scatter: Tensor,
    causal: bool,
    /// Where the stream lives (the padding row is created there).
    placement: Placement,
}

/// Shortest padded length for causal groups: below it, padding costs less than another kernel call.
const MIN_CAUSAL_BUCKET: usize = 32;

impl VarlenLayout {
    /// `lengths` are the segment lengths, in stream order (all > 0). With `causal`, segments are
    /// grouped by length rounded up to a power of two; without, by exact length.
    pub fn new(lengths: &[usize], causal: bool, placement: &Placement) -> Self {
        let tokens: usize = lengths.iter().sum();
        let bucket = |len: usize| {
            if causal {
                len.next_power_of_two().max(MIN_CAUSAL_BUCKET)
            } else {
                len
            }
        };
        let mut starts = Vec::with_capacity(lengths.len());
        let mut at = 0usize;
        for &len in lengths {
            starts.push(at);
            at += len;
        }
        // Group order is by bucket length, segments within a group in stream order: deterministic.
        let mut buckets: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, &len) in lengths.iter().enumerate() {
            buckets.entry(bucket(len)).or_default().push(i);
        }
        let mut scatter = vec![0i64; tokens];
        let mut groups = Vec::with_capacity(buckets.len());
        let mut out_row = 0i64;
        for (len, members) in buckets {
            let mut gather = Vec::with_capacity(members.len() * len);
            for &segment in &members {
                let (start, seg_len) = (starts[segment], lengths[segment]);
                for k in 0..len {
                    if k < seg_len {
                        scatter[start + k] = out_row;
                        gather.push((start + k) as i64);
                    } else {
                        gather.push(tokens as i64);
                    }
                    out_row += 1;
                }
            }
            groups.push(Group {
                gather: placement.put(&Tensor::from_slice(&gather)),
                segments: members.len() as i64,
                len: len as i64,
            });
        }
        let scatter = placement.put(&Tensor::from_slice(&scatter));
        Self {
            tokens: tokens as i64,
            groups,
            scatter,
            causal,
            placement: placement.clone(),
        }
    }

    pub fn tokens(&self) -> i64 {
        self.tokens
    }

    /// `q`, `k`, `v`: `[T, heads, head_dim]`. Returns `[T, heads * head_dim]`.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, precision: Precision) -> Tensor {
        let (t, heads, head_dim) = q
            .size3()
            .expect("attention inputs are [tokens, heads, head_dim]");
        debug_assert_eq!(t, self.tokens);
        let kind = precision.compute_kind();
        let zero_row = self
            .placement
            .create(|device| Tensor::zeros([1, heads, head_dim], (kind, device)));
        let pad = |x: &Tensor| Tensor::cat(&[&x.to_kind(kind), &zero_row], 0);
        let (q, k, v) = (pad(q), pad(k), pad(v));
        let outputs: Vec<Tensor> = self
            .groups
            .iter()
            .map(|g| {
                let take = |x: &Tensor| {
                    x.index_select(0, &g.gather)
                        .view([g.segments, g.len, heads, head_dim])
                        .transpose(1, 2)
                };
                Tensor::scaled_dot_product_attention::<Tensor>(
                    &take(&q),
                    &take(&k),
                    &take(&v),
                    None,
                    0.0,
                    self.causal,
                    None,
                    false,
                )
                .transpose(1, 2)
                .reshape([g.segments * g.len, heads * head_dim])
            })
            .collect();
        Tensor::cat(&outputs, 0)
            .index_select(0, &self.scatter)
            .to_kind(Kind::Float)
    }
}

/// Rotary tables `(cos, sin)`, each `[T, 1, head_dim / 2]`, for the given angles `[T, head_dim / 2]`.
fn tables(angles: Tensor) -> (Tensor, Tensor) {
    (angles.cos().unsqueeze(1), angles.sin().unsqueeze(1))
}

/// Inverse frequencies `theta^(-2i/dim)` for `i < dim / 2`.
fn inv_freq(dim: i64, theta: f64, placement: &Placement) -> Tensor {
    placement.create(|device| {
        let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Float, device)) / dim as f64;
        Tensor::from(theta)
            .to_device(device)
            .pow(&exponents)
            .reciprocal()
    })
}

/// 1-D rotary embedding from position ids (`[T]`, restarting at 0 in every packed sample, living on
/// `placement`).
pub fn rope_1d(
    positions: &Tensor,
    head_dim: i64,
    theta: f64,
    placement: &Placement,
) -> (Tensor, Tensor) {
    let freqs = inv_freq(head_dim, theta, placement);
    tables(positions.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0))
}

/// 2-D rotary embedding for image patches: half of the rotated pairs turn with the patch row, half
/// with the column (Qwen2-VL's vision rotary), so the tower works at any resolution.
pub fn rope_2d(
    rows: &Tensor,
    cols: &Tensor,
    head_dim: i64,
    theta: f64,
    placement: &Placement,
) -> (Tensor, Tensor) {
    let freqs = inv_freq(head_dim / 2, theta, placement);
    let r = rows.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    let c = cols.to_kind(Kind::Float).unsqueeze(1) * &freqs.unsqueeze(0);
    tables(Tensor::cat(&[r, c], 1))
}

/// Rotates `x` (`[T, heads, head_dim]`) by the tables: pairs are `(x[i], x[i + head_dim/2])`.
pub fn apply_rope(x: &Tensor, (cos, sin): &(Tensor, Tensor)) -> Tensor {
    let half = x.size()[2] / 2;
    let x1 = x.narrow(2, 0, half);
    let x2 = x.narrow(2, half, half);
    Tensor::cat(&[&x1 * cos - &x2 * sin, &x2 * cos + &x1 * sin], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const CPU: Placement = Placement::Tch(Device::Cpu);

    /// Dense reference: one `T x T` mask that allows only same-segment (and, if causal, earlier) keys.
    fn dense(q: &Tensor, k: &Tensor, v: &Tensor, lengths: &[usize], causal: bool) -> Tensor {
        let t: usize = lengths.iter().sum();
        let mut segment = Vec::new();
        for (i, &len) in lengths.iter().enumerate() {
            segment.extend(std::iter::repeat_n(i, len));
        }
        let mut allowed = vec![false; t * t];
        for i in 0..t {
            for j in 0..t {
                allowed[i * t + j] = segment[i] == segment[j] && (!causal || j <= i);
            }
        }
        let mask = Tensor::from_slice(&allowed).view([1, 1, t as i64, t as i64]);
        let (t, h, d) = q.size3().unwrap();
        let shape = |x: &Tensor| x.transpose(0, 1).unsqueeze(0);
        Tensor::scaled_dot_product_attention(
            &shape(q),
            &shape(k),
            &shape(v),
            Some(mask),
            0.0,
            false,
            None,
            false,
        )
        .squeeze_dim(0)
        .transpose(0, 1)
        .reshape([t, h * d])
    }

    #[test]
    fn grouped_attention_equals_the_block_diagonal_mask() {
        tch::manual_seed(7);
        let lengths = [5usize, 1, 40, 17, 5, 33, 2];
        let t: i64 = lengths.iter().sum::<usize>() as i64;
        let q = Tensor::randn([t, 2, 8], (Kind::Float, Device::Cpu));
        let k = Tensor::randn([t, 2, 8], (Kind::Float, Device::Cpu));
        let v = Tensor::randn([t, 2, 8], (Kind::Float, Device::Cpu));
        for causal in [true, false] {
            let got = VarlenLayout::new(&lengths, causal, &CPU).attend(&q, &k, &v, Precision::F32);
            let want = dense(&q, &k, &v, &lengths, causal);
            let diff = (got - want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "causal={causal}: max difference {diff}");
        }
    }

    #[test]
    fn a_token_never_sees_another_sample() {
        // Changing the second segment must not change the first one's outputs.
        let lengths = [6usize, 6];
        let layout = VarlenLayout::new(&lengths, true, &CPU);
        tch::manual_seed(1);
        let x = Tensor::randn([12, 1, 4], (Kind::Float, Device::Cpu));
        let y = x.copy();
        let _ = y.narrow(0, 6, 6).fill_(3.0);
        let a = layout.attend(&x, &x, &x, Precision::F32).narrow(0, 0, 6);
        let b = layout.attend(&y, &y, &y, Precision::F32).narrow(0, 0, 6);
        assert!(a.equal(&b));
    }

    #[test]
    fn rotary_keeps_norms_and_is_relative() {
        tch::manual_seed(3);
        let q = Tensor::randn([1, 1, 8], (Kind::Float, Device::Cpu));
        let k = Tensor::randn([1, 1, 8], (Kind::Float, Device::Cpu));
        let at = |p: i64, x: &Tensor| {
            apply_rope(x, &rope_1d(&Tensor::from_slice(&[p]), 8, 10000.0, &CPU))
        };
        let dot = |a: Tensor, b: Tensor| (a * b).sum(Kind::Float).double_value(&[]);
        // <R(p)q, R(s)k> depends on p - s only.
        let d1 = dot(at(5, &q), at(2, &k));
        let d2 = dot(at(13, &q), at(10, &k));
        assert!((d1 - d2).abs() < 1e-4, "{d1} vs {d2}");
        let n0 = q.norm().double_value(&[]);
        let n1 = at(9, &q).norm().double_value(&[]);
        assert!((n0 - n1).abs() < 1e-5);
    }
}
