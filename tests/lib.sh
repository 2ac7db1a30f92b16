# tests/lib.sh — sourced by the shell tests (tests/t_*.sh), run from the repository root.
# Gives: $M the moesim binary (absolute; MOESIM overrides), $T a scratch directory removed on exit,
# ok / bad MESSAGE / skip MESSAGE counters, check DESCRIPTION 'shell condition',
# expect CODE DESCRIPTION -- command... (stdout in $T/out, stderr in $T/err), and finish, which
# prints the closing "N passed, N failed, N skipped" line tests/run.sh adds up and sets the status;
# tiny_train writes $T/cluster.yaml and $T/train.yaml, a small training experiment ($TOP: topologies/).
M=${MOESIM:-build/moesim}
M="$(cd "$(dirname "$M")" && pwd)/$(basename "$M")"
REPO=$(pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
t_name=$(basename "$0")
pass=0; fail=0; skipped=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "$t_name: $1" >&2; }
skip() { skipped=$((skipped + 1)); echo "$t_name: skipped: $1" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
expect() {
  code=$1; what=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"; rc=$?
  if [ "$rc" -eq "$code" ]; then ok; else bad "$what: exit $rc, expected $code"; sed 's/^/    /' "$T/err" >&2; fi
}
finish() {
  echo "$pass passed, $fail failed, $skipped skipped"
  [ "$fail" -eq 0 ]
}
TOP="$REPO/topologies"
tiny_train() {
  cp "$REPO/tests/fixtures/tiny-ft2-2x4.yaml" "$T/cluster.yaml"
  sed -i "s|^catalogue: .*|catalogue: $TOP/hardware.yaml|" "$T/cluster.yaml"
  cat > "$T/train.yaml" <<EOF
name: tiny-train
kind: train
model: $REPO/tests/fixtures/tiny-moe.yaml
cluster: cluster.yaml
parallel: {pp: 2, ep: 2, dp_zero: 1, micro_batch_seqs: 1, global_batch_seqs: 16}
schedule: dualpipe
comm_sms: 8
routing: {balance: bias, skew_zipf_s: 1.0, seed: 3}
EOF
}
