#!/bin/sh
# tests/t_cli.sh — the command line as a user meets it: help texts, usage errors (exit 2), and
# bad configs that must exit 2 with path:line:col and create no output.
. tests/lib.sh

expect 0 "--help" -- "$M" --help
grep -q "usage: moesim" "$T/out" || bad "--help prints usage on stdout"
expect 0 "--version" -- "$M" --version
grep -q "^moesim [0-9]" "$T/out" || bad "--version prints the version"
expect 2 "no command" -- "$M"
expect 2 "unknown command" -- "$M" frobnicate
grep -q "unknown command 'frobnicate'" "$T/err" || bad "unknown command is named on stderr"
[ -s "$T/out" ] && bad "errors go to stderr, not stdout"
expect 2 "unknown option" -- "$M" --frob
for c in hw kernels a2a run topo model schedule plot validate; do
  expect 0 "$c --help" -- "$M" $c --help
  grep -qi "usage: moesim $c" "$T/out" || bad "$c --help shows its usage"
done
expect 2 "hw unknown option" -- "$M" hw --bogus
expect 2 "run unknown option" -- "$M" run --bogus
expect 2 "run without file" -- "$M" run
expect 2 "run missing file" -- "$M" run "$T/nope.yaml"

mkdir -p "$T/exp"
sed "s|^catalogue: .*|catalogue: $REPO/topologies/hardware.yaml|" tests/fixtures/tiny2x2.yaml > "$T/exp/cluster.yaml"
cat > "$T/exp/typo.yaml" <<'Y'
name: typo
kind: moe_layer
tokens_per_gpu: 64
cluster: cluster.yaml
tokens_per_gup: 3
Y
cd "$T" || exit 1
expect 2 "misspelled key" -- "$M" run exp/typo.yaml
grep -q "^exp/typo.yaml:5:1: error: unknown key 'tokens_per_gup' (did you mean 'tokens_per_gpu'?)" "$T/err" \
  || { bad "misspelled key message"; cat "$T/err" >&2; }
[ -e "$T/results" ] && bad "a bad config created results/"

sed 's/nic: {model: cx7-400g}/nic: {model: cx7-400g, bw_gbps: -400}/' exp/cluster.yaml > exp/negcluster.yaml
sed 's/cluster: cluster.yaml/cluster: negcluster.yaml/; /tokens_per_gup/d' exp/typo.yaml > exp/neg.yaml
expect 2 "negative bandwidth" -- "$M" run exp/neg.yaml
grep -q "^exp/negcluster.yaml:6:33: error: bw_gbps must be positive (got -400)" "$T/err" \
  || { bad "negative bandwidth message"; cat "$T/err" >&2; }
[ -e "$T/results" ] && bad "a bad config created results/"

sed '/tokens_per_gup/d' exp/typo.yaml > exp/good.yaml
expect 2 "bad --set value" -- "$M" run exp/good.yaml --set tokens_per_gpu=-1
grep -q "^--set:1:16: error: tokens_per_gpu must be positive" "$T/err" || { bad "--set error message"; cat "$T/err" >&2; }
expect 2 "unknown --set key" -- "$M" run exp/good.yaml --set cluster.nic.bw_gpbs=3
grep -q "did you mean 'cluster.nic.bw_gbps'" "$T/err" || { bad "--set did you mean"; cat "$T/err" >&2; }
sed 's/kind: moe_layer/kind: moe_layr/' exp/good.yaml > exp/kind.yaml
expect 2 "unknown kind" -- "$M" run exp/kind.yaml
grep -q "did you mean 'moe_layer'" "$T/err" || bad "unknown kind suggests"
[ -e "$T/results" ] && bad "a bad config created results/"

finish
