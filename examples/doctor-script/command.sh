#!/usr/bin/env sh
# Check a transformers-4 style QLoRA tutorial script against transformers 5.24 / peft 0.21 on an
# RTX 3060 12GB, and write the mechanically fixed copy.
#   sh examples/doctor-script/command.sh            # print the report
#   sh examples/doctor-script/command.sh --update   # rewrite expected_report.txt and train.fixed.py
set -e
cd "$(dirname "$0")"
args="train.py --gpu RTX-3060-12GB --transformers 5.24.0 --peft 0.21.2"
if [ "$1" = "--update" ]; then
    vramdoc doctor $args > expected_report.txt || true
    rm -f train.fixed.py
    vramdoc doctor $args --fix 2> /dev/null || true
else
    vramdoc doctor $args
fi
