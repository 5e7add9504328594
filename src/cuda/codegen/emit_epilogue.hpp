// The one epilogue every strategy's output kernel runs on each element once the conv (and its
// norm) has given its value: the pointwise chain (prelu with one or per-channel slopes among its
// ops), the block's dropout wherever it stands in the chain, a rounding to the storage type at
// each point where eager PyTorch stores a value (bf16/f16: after the norm and after each op), and
// the conversion to the stored element. The CPU backend's src/cpu/epilogue.cpp is the reference;
// the formulas are pointwise_math.h's and philox.h's, shared with it.
//
// An emitted kernel uses it in three parts:
//   emit_epilogue_random_state  once per thread: (seed, offset) read from the dropout state;
//   epilogue_draws_decl         once per 4-element block of the flat output: one Philox call, whose
//                               word k is the draw of element 4 q + k (as the CPU's DropoutMask);
//   epilogue_call               per element: fb_epilogue(value, channel, draw, slopes...).
// The slopes are the kernel's parameters `prelu0`, `prelu1`, ... (epilogue_params), one per prelu
// op in block order, bound to the buffers prelu_weight_role(k).
#pragma once
#include <string>

#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// The block's one dropout that draws a mask (in the chain or last), or nullptr. The CUDA
// strategies run at most one (cpu_only_forms refuses more): the dropout state holds its (seed,
// offset), so explicit seeds, a caller's state and the torch op's stream all give the CPU's mask.
const DropoutAttrs* active_dropout(const Pipeline& p);
// That dropout, or an identity one (p = 0) when none draws: what add_dropout_state and the
// executor's explicit seeds take.
DropoutAttrs drawn_dropout(const Pipeline& p);
// The number of dropouts of `p` that draw a mask.
int active_dropout_count(const Pipeline& p);
// The number of prelu ops of the chain (each has its slopes parameter).
int prelu_count(const Pipeline& p);

struct EpilogueOptions {
  // SiLU and sigmoid as fbl_silu_tf32 / fbl_sigmoid_tf32, which the caller defines (the sample-runs
  // kernels' TF32 math, docs/semantics.md).
  bool tf32_math = false;
  // The device function's name: a program holding two pipelines' epilogues (the fill path and its
  // exact fallback) names one of them otherwise.
  std::string name = "fb_epilogue";
  // The chain's ops before this index are already applied to the value (the fill path passes the
  // host's fold of the ops before its dropout: the CPU backend's float result, bit for bit).
  size_t first_op = 0;
};

// The index of the chain's first op whose result depends on the element (a drawing dropout or a
// prelu), or the chain's length: the ops before it fold to one value on the host.
size_t element_dependent_op(const Pipeline& p);

// __device__ fb_st fb_epilogue(float v, int c, fb_u32 draw, const fb_st* prelu0, ...): v is the
// norm's output before its rounding (or, without a norm, the conv output as stored), c its channel,
// draw its 24-bit Philox word (ignored without dropout). Needs the storage helpers (emit_storage.hpp).
void emit_epilogue_fn(SourceWriter& w, const Pipeline& p, const EpilogueOptions& o = {});
// The call expression for one element.
std::string epilogue_call(const Pipeline& p, const std::string& value, const std::string& channel,
                          const std::string& draw, const std::string& fn = "fb_epilogue");
// ", const fb_st* __restrict__ prelu0, ..." (empty without prelu), for a kernel's parameter list.
std::string epilogue_params(const Pipeline& p);
// ", prelu0, ..." (empty without prelu): the slopes passed on to a device function.
std::string epilogue_args(const Pipeline& p);
// The statement that reads (seed, offset) from `dropout_state`, or "" without an active dropout.
std::string epilogue_random_state(const Pipeline& p);
// `const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)(quad));`, or "".
std::string epilogue_draws_decl(const Pipeline& p, const std::string& quad);
// The draw of word k of `bits` ("bits.v[k]"), or "0u" without an active dropout.
std::string epilogue_draw(const Pipeline& p, const std::string& k);

// fb_store_quad(y, q, o, first, len): the flat output's 4-element block q from o[0..3], element k
// where 0 <= first + k < len; a whole block is one vector store (16 bytes for f32, 8 for bf16/f16).
void emit_store_quad_fn(SourceWriter& w, DType storage);

}  // namespace fuseblock::cuda
