#!/usr/bin/env bash
# The main job: set up ./.venv if needed, then train and evaluate models side by side on the
# cold-start split of a dataset (default: the GENERATED demo, built on first use).
#   bash scripts/demo.sh                              # demo data: floors, BPR, LightGCN and MuSiC
#   DATASET=movie_music MODELS=TargetMF bash scripts/demo.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
DATASET="${DATASET:-movie_music_demo}"
MODELS="${MODELS:-GlobalMean,ItemMean,TargetMF,BPR,LightGCN,MuSiC}"
mkdir -p results
# said first: the comparison table stays the last thing printed
echo "== metrics go to results/${DATASET}.json; logs to log/, checkpoints to saved/"
python run_recbole_music.py --model="$MODELS" --dataset="$DATASET" \
  --result_json="results/${DATASET}.json" "$@"
