#!/bin/sh
# tests/t_topo.sh — `moesim topo` and the network's command-line surfaces as a user meets them:
# the CSV line of every shipped topology (counts against the closed forms), the table, --set,
# usage errors (exit 2), a bad file (path:line:col, exit 2), `moesim validate deepep --csv`, and a
# `collective` experiment with its links.csv.
. tests/lib.sh

# csv FILE EXPECTED-ROW-PREFIX  (name,endpoints,switches,links,bisection_gbps)
csv() {
  expect 0 "topo $1 --csv" -- "$M" topo "topologies/$1" --csv
  [ "$(sed -n 1p "$T/out")" = "name,endpoints,switches,links,bisection_gbps,cost_usd,cost_per_endpoint_usd" ] \
    && ok || bad "$1: CSV header"
  case "$(sed -n 2p "$T/out")" in "$2",*) ok ;; *) bad "$1: row '$(sed -n 2p "$T/out")', expected '$2,...'" ;; esac
  [ "$(wc -l < "$T/out")" -eq 2 ] && ok || bad "$1: header and one row"
}
csv h800-2048-ft2.yaml "v3-h800-2048-ft2,2048,96,2048,409600"
csv mpft-16384.yaml "mpft-16384,16384,768,16384,3276800"
csv ft3-64.yaml "ft3-64,65536,5120,131072,13107200"
csv gb200-nvl72.yaml "gb200-nvl72-28,2016,95,2016"
csv h800-2node.yaml "h800-2node,16,1,0,3200"
csv this-machine.yaml "this-machine,1,0,0,0"
csv dragonfly-64.yaml "dragonfly-64,261632,16352,384272"

expect 0 "topo table" -- "$M" topo topologies/h800-2048-ft2.yaml
grep -q "^switches  *96$" "$T/out" && ok || bad "table lists 96 switches"
grep -q "^cost per endpoint" "$T/out" && ok || bad "table prints the cost per endpoint"
grep -q "bill of materials" "$T/out" && ok || bad "table prints the bill of materials"
expect 0 "topo --set" -- "$M" topo topologies/h800-2048-ft2.yaml --csv --set nodes=128 --set switch.price_usd=0
case "$(sed -n 2p "$T/out")" in v3-h800-2048-ft2,1024,*) ok ;; *) bad "--set nodes=128: $(sed -n 2p "$T/out")" ;; esac
expect 0 "topo --help" -- "$M" topo --help
grep -q "usage: moesim topo FILE" "$T/out" && ok || bad "--help shows the usage"
expect 2 "topo without file" -- "$M" topo
expect 2 "topo bad option" -- "$M" topo topologies/h800-2node.yaml --bogus
grep -q "unknown option '--bogus'" "$T/err" && ok || bad "bad option named"
[ -s "$T/out" ] && bad "usage errors print nothing on stdout" || ok
expect 2 "topo missing file" -- "$M" topo "$T/nope.yaml"
expect 2 "topo unused override" -- "$M" topo topologies/h800-2node.yaml --set fabric.nope=1

cat > "$T/bad.yaml" <<Y
name: bad
catalogue: $(pwd)/topologies/hardware.yaml
gpu: {model: h800}
nic: {model: cx7-400g}
switch: {model: qm9700}
nodes: 3
gpus_per_node: 8
fabric: {kind: dragonflyy}
Y
expect 2 "topo bad kind" -- "$M" topo "$T/bad.yaml"
grep -q "bad.yaml:8:16: error: unknown kind 'dragonflyy' (did you mean 'dragonfly'?" "$T/err" && ok \
  || bad "bad kind reported with path:line:col: $(head -1 "$T/err")"

expect 0 "validate deepep" -- "$M" validate deepep --csv
[ "$(grep -c '^deepep\.' "$T/out")" -eq 8 ] && ok || bad "8 DeepEP checks"
grep -q ",no$" "$T/out" && bad "a DeepEP check fails" || ok

cat > "$T/coll.yaml" <<Y
name: coll
kind: collective
cluster: $(pwd)/topologies/h800-2node.yaml
collective: ep_combine
ranks: 16
comm_sms: 24
links_csv: true
ep: {tokens: 256, routing: gate, skew: 1.0}
Y
expect 0 "collective experiment" -- "$M" run "$T/coll.yaml" --out "$T/res" --quiet
head -1 "$T/res/results.csv" | grep -q "time_us" && ok || bad "results.csv has time_us"
[ "$(head -1 "$T/res/links.csv")" = "link,src,dst,kind,gbyte_s,bytes,utilization" ] && ok || bad "links.csv header"
[ "$(wc -l < "$T/res/links.csv")" -gt 30 ] && ok || bad "links.csv lists the used links"
cat > "$T/ar.yaml" <<Y
name: ar
kind: collective
cluster: $(pwd)/topologies/h800-2node.yaml
collective: allreduce_ring
ranks: 16
bytes: 16777216
Y
expect 0 "all-reduce experiment" -- "$M" run "$T/ar.yaml" --out "$T/ar" --quiet
grep -q "allreduce_ring" "$T/ar/results.csv" && ok || bad "all-reduce row"
sed -i 's/ranks: 16/ranks: 17/' "$T/ar.yaml"
expect 2 "too many ranks" -- "$M" run "$T/ar.yaml" --out "$T/ar2" --quiet
[ -e "$T/ar2/results.csv" ] && bad "no results on bad input" || ok

finish
