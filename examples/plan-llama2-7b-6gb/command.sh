#!/usr/bin/env sh
# Plan a Llama-2-7B fine-tune for a 6 GB GPU (generation assumed: Turing, sm75).
# stdout: the Python snippet; stderr: the ranked report.
#   sh examples/plan-llama2-7b-6gb/command.sh            # print both
#   sh examples/plan-llama2-7b-6gb/command.sh --update   # rewrite the expected outputs
set -e
here=$(dirname "$0")
if [ "$1" = "--update" ]; then
    vramdoc plan --model llama-2-7b --gpu 6GB > "$here/expected_stdout.py" 2> "$here/expected_stderr.txt"
else
    vramdoc plan --model llama-2-7b --gpu 6GB
fi
