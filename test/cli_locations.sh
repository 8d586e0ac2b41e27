#!/bin/sh
# test/cli_locations.sh: the options that change which locations become
# features and where the taps sit (docs/ALGORITHM.md §16), end to end on the
# fixture models and the bundled demo backbone:
#   - --tap-fraction 1 is the default (same feature bytes, same `h2t run`
#     head and accuracy); 1/4 and 1/16 keep the locations §16 names;
#   - --include-input adds 'input' [S, S, 3] as the first location;
#   - --tap-point changes the tapped tensors but not pre_logits;
#   - --cls only-cls / original+cls give a ViT's token maps C and
#     C + pooled features.
H2T=${H2T_BIN:-./h2t}
R15=test/fixtures/resnet_v15/model
VIT=test/fixtures/vit/model
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_locations: $1"; }
bad() { echo "FAIL cli_locations: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }
names() { tail -n +2 "$1" | cut -f1 | tr '\n' ' ' | sed 's/ $//'; }

IMG=test/fixtures/resnet_v15/images.npy
"$H2T" features --model $R15 --images $IMG --target-size 64 --out "$T/a.npy" --quiet &&
    "$H2T" features --model $R15 --images $IMG --target-size 64 --tap-fraction 1 --out "$T/b.npy" --quiet
rc=$?
[ $rc = 0 ] && cmp -s "$T/a.npy" "$T/b.npy" && cmp -s "$T/a.layout.tsv" "$T/b.layout.tsv"
check $? "features --tap-fraction 1 writes the default's bytes"
"$H2T" features --model $R15 --images $IMG --target-size 64 --tap-fraction 1/4 --out "$T/q.npy" --quiet
# units 1,1,2,1: 19 locations, 18 counted (pre_logits aside) -> positions 0, 4, 8, 12, 16, and pre_logits
want="after_root block2_unit1_layer0 block3_unit1_layer1 block3_unit2_layer2 pre_logits_pre_pooling pre_logits"
[ "$(names "$T/q.layout.tsv")" = "$want" ]
check $? "features --tap-fraction 1/4: $(names "$T/q.layout.tsv")"
"$H2T" features --model $R15 --images $IMG --target-size 64 --tap-fraction 1/16 --out "$T/s.npy" --quiet
[ "$(names "$T/s.layout.tsv")" = "after_root pre_logits_pre_pooling pre_logits" ]
check $? "features --tap-fraction 1/16: $(names "$T/s.layout.tsv")"

"$H2T" features --model $R15 --images $IMG --target-size 64 --include-input --out "$T/i.npy" --quiet
[ "$(sed -n 2p "$T/i.layout.tsv" | cut -f1,5)" = "input$(printf '\t')40x40x3" ] &&
    [ "$(tail -n +3 "$T/i.layout.tsv" | cut -f1)" = "$(tail -n +2 "$T/a.layout.tsv" | cut -f1)" ]
check $? "features --include-input: 'input' 40x40x3 first, then the same locations"

"$H2T" taps --model $R15 --images $IMG --taps block2_unit1_layer1,pre_logits --out "$T/t0" >/dev/null 2>&1 &&
    "$H2T" taps --model $R15 --images $IMG --taps block2_unit1_layer1,pre_logits --tap-point pre-normalization \
        --out "$T/t1" >/dev/null 2>&1
rc=$?
[ $rc = 0 ] && ! cmp -s "$T/t0/block2_unit1_layer1.npy" "$T/t1/block2_unit1_layer1.npy" &&
    cmp -s "$T/t0/pre_logits.npy" "$T/t1/pre_logits.npy"
check $? "taps --tap-point pre-normalization: another block2_unit1_layer1, the same pre_logits"

VIMG=test/fixtures/vit/images.npy
"$H2T" features --model $VIT --images $VIMG --target-size 64 --cls only-cls --out "$T/v1.npy" --quiet &&
    "$H2T" features --model $VIT --images $VIMG --target-size 256 --cls original+cls --out "$T/v2.npy" --quiet
rc=$?
# width 64: every token map (17 tokens) -> its class token, 64; at T 256 original+cls: 64 + pooled 16 tokens
# (groups 4, p = int(16/4) = 4: 4 windows) = 64 + 256; the MLP maps (128 wide): groups 2, p 8, 2 windows: 128 + 256
a=$(awk -F'\t' 'NR > 1 && $5 ~ /^17x/ { split($5, s, "x"); if ($3 != s[2] || $4 != -1) n++ } END { print n + 0 }' "$T/v1.layout.tsv")
b=$(awk -F'\t' 'NR > 1 && $5 == "17x64" && ($3 != 320 || $6 != "cls+4x64") { n++ } END { print n + 0 }' "$T/v2.layout.tsv")
c=$(awk -F'\t' 'NR > 1 && $5 == "17x128" && ($3 != 384 || $6 != "cls+2x128") { n++ } END { print n + 0 }' "$T/v2.layout.tsv")
[ $rc = 0 ] && [ "$a" = 0 ] && [ "$b" = 0 ] && [ "$c" = 0 ] && grep -q '^encoded_sequence' "$T/v2.layout.tsv"
check $? "features --cls only-cls: every token map gives its class token; original+cls: the class token + pooled tokens 1..16"

# h2t run: --tap-fraction 1 is the default (same head, same accuracy)
C=demo/tasks/clevr_count
RUN="--model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy --test-images $C/test_images.npy --test-labels $C/test_labels.npy --target-size 64 --lr 0.1 --steps 10 --coef 1e-3 --fraction 0.05 --quiet --no-figures"
"$H2T" run $RUN --out "$T/r0" >/dev/null 2>&1 && "$H2T" run $RUN --tap-fraction 1 --out "$T/r1" >/dev/null 2>&1
rc=$?
acc() { tr -d ' \n' <"$1" | sed -n 's/.*"test_accuracy":\([0-9.]*\),.*/\1/p'; }
[ $rc = 0 ] && cmp -s "$T/r0/head2toe/W.npy" "$T/r1/head2toe/W.npy" && [ -n "$(acc "$T/r0/report.json")" ] &&
    [ "$(acc "$T/r0/report.json")" = "$(acc "$T/r1/report.json")" ] && grep -q '"tap_fraction": "1/1"' "$T/r1/report.json"
check $? "run --tap-fraction 1 gives the default's head and test accuracy ($(acc "$T/r1/report.json"))"
exit 0
