#!/usr/bin/env bash
# On the GPU machine (see bench/README.md for the bundle): `generate` and `serve` with
# --device cuda, end to end through the engine, against transformers' greedy ids.
#   bash bench/gpu-serve-check.sh OUT_DIR
set -uo pipefail
out=${1:?usage: gpu-serve-check.sh OUT_DIR}
dist=.device-carry/dist
for model in llama2 llama3 mistral qwen2 qwen3; do
  dir=test/fixtures/models/$model
  prompt=$(python3 -c "import json,sys; print(json.load(open('$dir/reference.json'))['prompt'])")
  bun $dist/generate.js --device cuda --model "$dir" --prompt "$prompt" --max-tokens 24 --temperature 0 --ignore-eos --json \
    > "$out/generate-$model.json" 2> "$out/generate-$model.err"
  python3 - "$dir/reference.json" "$out/generate-$model.json" <<'PY'
import json, sys
ref, ours = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
same = 0
while same < len(ref["greedy_ids"]) and same < len(ours["output_ids"]) and ours["output_ids"][same] == ref["greedy_ids"][same]:
    same += 1
low = next((i for i, m in enumerate(ref["margins"]) if m < 0.1), len(ref["margins"]))
print(f"{sys.argv[1].split('/')[-2]:8s} prompt ids {'equal' if ours['prompt_ids'] == ref['prompt_ids'] else 'DIFFER'}; "
      f"greedy ids equal for {same}/{len(ref['greedy_ids'])} (first reference margin < 0.1 at step {low})")
PY
done
# seeded sampling, drawn on the GPU through the engine: the same seed twice gives the same ids
dir=test/fixtures/models/llama3
for run in 1 2; do
  bun $dist/generate.js --device cuda --model "$dir" --prompt "Once upon a time" --max-tokens 24 --temperature 0.8 --top-p 0.95 --seed 7 --ignore-eos --json \
    > "$out/sampled-$run.json" 2> "$out/sampled-$run.err"
done
python3 - "$out/sampled-1.json" "$out/sampled-2.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["output_ids"] for p in sys.argv[1:3])
print(f"sampled (seed 7, temperature 0.8, top-p 0.95): {len(a)} ids, the two runs {'equal' if a == b else 'DIFFER'}")
PY
# asynchronous scheduling (on by default on the GPU: each step launched before the one before is
# read, its ids taken on the device) against step after step: the same ids, greedy and seeded
for mode in true false; do
  bun $dist/generate.js --device cuda --model "$dir" --prompt "Once upon a time" --max-tokens 40 --temperature 0 --ignore-eos --json \
    --async-scheduling $mode > "$out/async-greedy-$mode.json" 2> "$out/async-greedy-$mode.err"
  bun $dist/generate.js --device cuda --model "$dir" --prompt "Once upon a time" --max-tokens 40 --temperature 0.8 --top-k 40 --seed 11 --ignore-eos --json \
    --async-scheduling $mode > "$out/async-sampled-$mode.json" 2> "$out/async-sampled-$mode.err"
done
python3 - "$out" <<'PY'
import json, sys
ids = lambda name: json.load(open(f"{sys.argv[1]}/{name}.json"))["output_ids"]
for kind in ("greedy", "sampled"):
    a, b = ids(f"async-{kind}-true"), ids(f"async-{kind}-false")
    print(f"asynchronous scheduling, {kind}: {len(a)} ids, {'equal' if a == b else 'DIFFER'} to step after step")
PY
bun $dist/serve.js --device cuda --model test/fixtures/models/qwen3 --port 18600 > "$out/serve.log" 2>&1 &
for _ in $(seq 1 120); do curl -sf localhost:18600/ready > /dev/null && break; sleep 0.5; done
curl -s localhost:18600/v1/completions -H 'content-type: application/json' \
  -d '{"prompt": "The little robot", "max_tokens": 8, "temperature": 0, "ignore_eos": true}' > "$out/serve-completion.json"
curl -s localhost:18600/v1/chat/completions -H 'content-type: application/json' \
  -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "stream": true, "stream_options": {"include_usage": true}}' > "$out/serve-chat.sse"
# penalties and logit bias, drawn on the GPU (their logits edits), twice with one seed: the same text
for run in 1 2; do
  curl -s localhost:18600/v1/completions -H 'content-type: application/json' \
    -d '{"prompt": "The little robot", "max_tokens": 16, "temperature": 0.9, "seed": 5, "presence_penalty": 1.5, "frequency_penalty": 0.5, "repetition_penalty": 1.3, "logit_bias": {"13": 4}, "ignore_eos": true}' \
    > "$out/serve-penalties-$run.json"
done
# logprobs, made on the GPU: greedy, so each token is its own most likely one (rank 1, top of the 5)
curl -s localhost:18600/v1/completions -H 'content-type: application/json' \
  -d '{"prompt": "The little robot", "max_tokens": 8, "temperature": 0, "logprobs": 5, "ignore_eos": true}' > "$out/serve-logprobs.json"
curl -s localhost:18600/metrics | grep -E '^vllm:(generation_tokens_total|kv_cache_usage_perc)' > "$out/serve-metrics.txt"
kill -TERM %1; wait
echo "serve: $(head -c 300 "$out/serve-completion.json")"
echo "serve: $(grep -c '^data:' "$out/serve-chat.sse") SSE events; $(tail -n 3 "$out/serve.log" | tr '\n' ' ')"
python3 - "$out/serve-penalties-1.json" "$out/serve-penalties-2.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ta, tb = (x["choices"][0]["text"] if "choices" in x else x for x in (a, b))
print(f"serve with penalties and logit bias (seed 5): {a.get('usage', {}).get('completion_tokens')} tokens, the two runs {'equal' if ta == tb else 'DIFFER'}")
PY
python3 - "$out/serve-logprobs.json" <<'PY'
import json, math, sys
lp = json.load(open(sys.argv[1]))["choices"][0]["logprobs"]
ok = len(lp["tokens"]) == 8 and all(
    len(top) >= 1 and abs(chosen - max(top.values())) < 1e-9 and sum(math.exp(v) for v in top.values()) <= 1 + 1e-9
    for chosen, top in zip(lp["token_logprobs"], lp["top_logprobs"]))
print(f"serve logprobs (greedy, 5 top): {len(lp['tokens'])} tokens, each its own most likely: {'yes' if ok else 'NO'}; first {lp['token_logprobs'][0]:.4f}")
PY
