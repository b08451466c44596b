"""Parity with the official Ovi code on the tiny reference model (tests/fixtures/ovi_tiny)."""

from __future__ import annotations

import pytest
import torch

from duet.reference import case_inputs, load_cases, load_model, run_case


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def ref(reference_dir):
    return load_cases(reference_dir)


CASES = ["a_t2v_joint", "b_batch2", "b2_batch2_padded", "c_slg_negative", "c0_negative_no_slg",
         "d_audio_only", "e_video_only", "f_i2v_first_frame_clean"]


@pytest.mark.parametrize("name", CASES)
def test_float32_matches_high_precision_reference(reference_dir, ref, name):
    cases, tensors = ref
    model = load_model(reference_dir, torch.float32)
    outs = run_case(model, cases[name], tensors, torch.float32)
    assert outs, "case produced no outputs"
    for key, ours in outs.items():
        want = tensors[key.replace("out.", "out_hp.", 1)]
        assert ours.shape == want.shape
        torch.testing.assert_close(ours, want, atol=1e-4, rtol=1e-4)
        assert rel_l2(ours, want) < 1e-5


@pytest.mark.parametrize("name", CASES)
def test_bfloat16_matches_official_bf16(reference_dir, ref, name):
    cases, tensors = ref
    model = load_model(reference_dir, torch.bfloat16)
    outs = run_case(model, cases[name], tensors, torch.bfloat16)
    for key, ours in outs.items():
        want = tensors[key]
        assert ours.dtype == torch.bfloat16
        assert rel_l2(ours, want) < 3e-2
        assert float((ours.float() - want.float()).abs().max()) < 0.15


def test_block_by_block_trace_matches_reference(reference_dir, ref):
    """Every intermediate of case a (embeddings, each fused block, heads) matches trace_hp."""
    cases, tensors = ref
    model = load_model(reference_dir, torch.float32)
    video, audio = case_inputs(cases["a_t2v_joint"], tensors, torch.float32)
    tr = {k.split("a_t2v_joint.", 1)[1]: v for k, v in tensors.items()
          if k.startswith("trace_hp.a_t2v_joint.")}

    def check(name: str, ours: torch.Tensor) -> None:
        torch.testing.assert_close(ours.float(), tr[name].float(), atol=1e-4, rtol=1e-4, msg=name)

    with torch.no_grad():
        vs, as_ = model.video_model.prepare(video), model.audio_model.prepare(audio)
        for tag, s in (("vid", vs), ("audio", as_)):
            check(f"{tag}.x_embed", s.x)
            check(f"{tag}.e_time", s.e.expand_as(tr[f"{tag}.e_time"]))
            check(f"{tag}.e0_mod", s.e0.expand_as(tr[f"{tag}.e0_mod"]))
            check(f"{tag}.context_emb", s.context)
        assert list(vs.grid) == tr["vid.grid_sizes"][0].tolist()
        for i, (vb, ab) in enumerate(model.block_pairs()):
            if i == 0:
                for tag, blk, s in (("audio", ab, as_), ("vid", vb, vs)):
                    shift, scale = blk.modulation(s.e0)[:2]
                    h = blk.norm1(s.x) * (1 + scale) + shift
                    check(f"block0.{tag}.self_attn_out", blk.self_attn(h, s.rope, s.mask))
            as_.x = ab.self_attention(as_)
            vs.x = vb.self_attention(vs)
            a_sa, v_sa = as_.source(), vs.source()
            if i == 0:
                check("block0.audio.cross_attn_out",
                      ab.cross_attn(ab.norm3(as_.x), as_.context, as_.rope, v_sa))
                check("block0.vid.cross_attn_out",
                      vb.cross_attn(vb.norm3(vs.x), vs.context, vs.rope, a_sa))
            as_.x = ab.cross_attention_ffn(as_, other=v_sa)
            vs.x = vb.cross_attention_ffn(vs, other=a_sa)
            check(f"block{i}.audio_out", as_.x)
            check(f"block{i}.vid_out", vs.x)
        check("vid.head_out", model.video_model.head(vs.x, vs.e))
        check("audio.head_out", model.audio_model.head(as_.x, as_.e))


def test_gradient_checkpointing_gives_the_same_gradients(reference_dir, ref):
    cases, tensors = ref
    grads = []
    for ckpt in (False, True):
        model = load_model(reference_dir, torch.float32).train()
        model.gradient_checkpointing = ckpt
        v, a = model(*case_inputs(cases["b2_batch2_padded"], tensors, torch.float32))
        (v.square().mean() + a.square().mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)
    assert grads[0].abs().sum() > 0
