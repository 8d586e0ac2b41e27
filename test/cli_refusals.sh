#!/bin/sh
# test/cli_refusals.sh: every command refuses bad input cleanly -- exit
# status 1, exactly one line on stderr (naming the file or flag), and nothing
# left at the output path (no file, no directory, no "*.tmp.*").
#
# Inputs: the malformed .npy corpus test/bad/*.npy (test/bad/EXPECT.tsv gives
# a word each refusal must contain; regenerate with test/bad/make_bad.py) fed
# to every command that reads a .npy, flag refusals per command, and the
# well-formed files of wrong content in test/bad/semantic/ (labels, images).
# A case only runs when its command is listed by `h2t --help`, so the script
# grows with the CLI: to cover a new command, add a section below that calls
# `refuse` (and `has_cmd NAME || skip ...` at its top).
H2T=${H2T_BIN:-./h2t}
FX=test/fixtures/lasso
BAD=test/bad
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_refusals: $1"; }
bad() { echo "FAIL cli_refusals: $1"; }
skip() { echo "SKIP cli_refusals: $1"; }

if ! "$H2T" --help >"$T/help" 2>&1; then
    bad "$H2T --help failed (rc $?): $(head -c 200 "$T/help")"
    exit 1
fi
has_cmd() { grep -q "^  $1 " "$T/help"; }

# refuse NAME OUT WORD1 WORD2 -- COMMAND...: runs COMMAND; passes if it exits
# 1 with exactly one stderr line containing WORD1 and WORD2 (either may be
# ""), and neither OUT nor any temporary file exists afterwards. OUT is the
# path the command was told to write ("-" when it writes nothing).
refuse() {
    name=$1 out=$2 w1=$3 w2=$4
    shift 5
    "$@" >"$T/stdout" 2>"$T/err"
    rc=$?
    n=$(wc -l <"$T/err")
    left=""
    [ "$out" != - ] && [ -e "$out" ] && left="$out exists"
    tmps=$(find "$T" -name '*.tmp.*' | head -3)
    [ -n "$tmps" ] && left="$left temporary files: $tmps"
    if [ "$rc" = 1 ] && [ "$n" = 1 ] && grep -qF -- "$w1" "$T/err" && grep -qF -- "$w2" "$T/err" &&
        [ -z "$left" ]; then
        ok "$name: $(cat "$T/err")"
    else
        bad "$name: rc $rc (want 1), $n stderr lines (want 1), want '$w1' and '$w2'${left:+, $left}: $(head -c 300 "$T/err")"
    fi
    [ "$out" != - ] && rm -rf "$out"
    find "$T" -name '*.tmp.*' -exec rm -f {} +
}

# for_each_bad: reads "file word" lines of the corpus (call as: for_each_bad | while read -r f word; do ...)
for_each_bad() { grep -v '^#' "$BAD/EXPECT.tsv"; }
TAB=$(printf '\t')

# ---- h2t itself
refuse "unknown command" - "unknown command 'frobnicate'" "" -- "$H2T" frobnicate

# ---- h2t join: --out F.npy SHARD.npy...
if has_cmd join; then
    for_each_bad | while IFS=$TAB read -r f word; do
        refuse "join $f" "$T/j.npy" "$BAD/$f" "$word" -- "$H2T" join --out "$T/j.npy" "$BAD/$f"
        refuse "join X.npy $f" "$T/j.npy" "$BAD/$f" "$word" -- "$H2T" join --out "$T/j.npy" "$FX/X.npy" "$BAD/$f"
    done
    refuse "join without --out" - "--out" "" -- "$H2T" join "$FX/X.npy"
    refuse "join unknown flag" "$T/j.npy" "--frob" "" -- "$H2T" join --frob --out "$T/j.npy" "$FX/X.npy"
    refuse "join missing input" "$T/j.npy" "nothere.npy" "" -- "$H2T" join --out "$T/j.npy" "$T/nothere.npy"
else
    skip "join: not in h2t --help"
fi

# ---- h2t score: --features F.npy --labels y.npy --out DIR
if has_cmd score; then
    for_each_bad | while IFS=$TAB read -r f word; do
        refuse "score --features $f" "$T/s" "$BAD/$f" "$word" -- \
            "$H2T" score --features "$BAD/$f" --labels "$FX/y.npy" --out "$T/s" --quiet
        refuse "score --labels $f" "$T/s" "$BAD/$f" "" -- \
            "$H2T" score --features "$FX/X.npy" --labels "$BAD/$f" --out "$T/s" --quiet
    done
    refuse "score NaN feature" "$T/s" "features_nan.npy" "row 7, column 3" -- \
        "$H2T" score --features test/bad/semantic/features_nan.npy --labels "$FX/y.npy" --out "$T/s" --quiet
    refuse "score unknown flag" "$T/s" "--frob" "" -- "$H2T" score --frob 1 --features "$FX/X.npy" --out "$T/s"
    refuse "score missing --labels" "$T/s" "--labels" "" -- "$H2T" score --features "$FX/X.npy" --out "$T/s"
    refuse "score --steps abc" "$T/s" "--steps" "abc" -- \
        "$H2T" score --features "$FX/X.npy" --labels "$FX/y.npy" --steps abc --out "$T/s"
    refuse "score --score bogus" "$T/s" "--score" "f-classif" -- \
        "$H2T" score --features "$FX/X.npy" --labels "$FX/y.npy" --score bogus --out "$T/s"
    refuse "score --score layer without --layout" "$T/s" "--layout" "" -- \
        "$H2T" score --features "$FX/X.npy" --labels "$FX/y.npy" --score layer --out "$T/s"
    refuse "score --score chi2 of negative features" "$T/s" "chi2" "non-negative" -- \
        "$H2T" score --features "$FX/X.npy" --labels "$FX/y.npy" --score chi2 --out "$T/s"
    refuse "score --score variance with --init" "$T/s" "--init" "trains no head" -- \
        "$H2T" score --features "$FX/X.npy" --labels "$FX/y.npy" --score variance --init "$FX/W0.npy" --out "$T/s"
else
    skip "score: not in h2t --help"
fi

# ---- h2t fit: --features F.npy --labels y.npy --out DIR
if has_cmd fit; then
    for_each_bad | while IFS=$TAB read -r f word; do
        refuse "fit --features $f" "$T/f" "$BAD/$f" "$word" -- "$H2T" fit --features "$BAD/$f" --labels "$FX/y.npy" \
            --layout "$FX/X.layout.tsv" --out "$T/f" --quiet
    done
    refuse "fit unknown --method" "$T/f" "--method" "frob" -- "$H2T" fit --method frob --features "$FX/X.npy" \
        --labels "$FX/y.npy" --out "$T/f"
    # the selection options (docs/ALGORITHM.md §15, §16)
    F3="--features $FX/X.npy --labels $FX/y.npy --layout $FX/X.layout.tsv --lr 0.05 --steps 5 --quiet"
    refuse "fit unknown --score" "$T/f" "--score" "bogus" -- "$H2T" fit $F3 --score bogus --out "$T/f"
    refuse "fit --score chi2 of negative features" "$T/f" "chi2" "non-negative" -- "$H2T" fit $F3 --score chi2 \
        --fraction 0.1 --coef 1e-3 --out "$T/f"
    refuse "fit --score with --method linear" "$T/f" "--score" "head2toe" -- "$H2T" fit $F3 --method linear \
        --score l1 --out "$T/f"
    refuse "fit --average-over 0" "$T/f" "--average-over" "integer" -- "$H2T" fit $F3 --average-over 0 --out "$T/f"
    refuse "fit --keep-offset -1" "$T/f" "--keep-offset" "integer" -- "$H2T" fit $F3 --keep-offset -1 --out "$T/f"
    refuse "fit --keep-offset beyond D" "$T/f" "--keep-offset 39" "beyond the 40 features" -- "$H2T" fit $F3 \
        --keep-offset 39 --fraction 0.1 --coef 1e-3 --out "$T/f"
    refuse "fit --score-interpolation 2" "$T/f" "--score-interpolation" "number" -- "$H2T" fit $F3 \
        --score-interpolation 2 --out "$T/f"
    refuse "fit --train-fraction 0" "$T/f" "--train-fraction" "number" -- "$H2T" fit $F3 --train-fraction 0 --out "$T/f"
    refuse "fit --train-fraction 1.5" "$T/f" "--train-fraction" "number" -- "$H2T" fit $F3 --train-fraction 1.5 \
        --out "$T/f"
    refuse "fit --select-from missing" "$T/f" "$T/nosel/layout.tsv" "" -- "$H2T" fit $F3 --select-from "$T/nosel" \
        --out "$T/f"
    refuse "fit --select-from with --score" "$T/f" "--select-from" "do not apply" -- "$H2T" fit $F3 \
        --select-from "$T/nosel" --score l1 --out "$T/f"
    refuse "fit --select-from with --fraction" "$T/f" "--select-from" "do not apply" -- "$H2T" fit $F3 \
        --select-from "$T/nosel" --fraction 0.1 --out "$T/f"
    if "$H2T" fit $F3 --fraction 0.1 --coef 1e-3 --out "$T/own" >/dev/null 2>&1; then
        printf 'location\toffset\tdim\tpool\nblock1\t0\t10\t-1\nblock2\t10\t30\t-1\n' >"$T/other.tsv"
        refuse "fit --select-from another layout" "$T/f" "--select-from" "other features" -- "$H2T" fit \
            --features "$FX/X.npy" --labels "$FX/y.npy" --layout "$T/other.tsv" --lr 0.05 --steps 5 --quiet \
            --select-from "$T/own" --out "$T/f"
        cp -r "$T/own" "$T/own2" && cp test/fixtures/npy/i4_2x2x2.npy "$T/own2/selected.npy"
        refuse "fit --select-from a 3-D selected.npy" "$T/f" "own2/selected.npy" "ascending" -- "$H2T" fit $F3 \
            --select-from "$T/own2" --out "$T/f"
        rm -rf "$T/own" "$T/own2" "$T/other.tsv"
    else
        bad "fit: could not fit a head to select from"
    fi
else
    skip "fit: not in h2t --help"
fi

# ---- h2t eval: --head DIR --features F.npy --labels y.npy (needs a fitted head)
if has_cmd eval && has_cmd fit; then
    if "$H2T" fit --method linear --features "$FX/X.npy" --labels "$FX/y.npy" --layout "$FX/X.layout.tsv" \
        --lr 0.05 --steps 5 --out "$T/head" --quiet >/dev/null 2>&1; then
        for_each_bad | while IFS=$TAB read -r f word; do
            refuse "eval --features $f" "$T/e.json" "$BAD/$f" "$word" -- "$H2T" eval --head "$T/head" \
                --features "$BAD/$f" --labels "$FX/y.npy" --out "$T/e.json"
        done
    else
        bad "eval: could not fit a head to evaluate (h2t fit --method linear failed)"
    fi
else
    skip "eval: not in h2t --help (or fit missing)"
fi

# ---- h2t features / h2t taps: need a model directory (add cases when a
# model fixture exists: the tiny ResNet of test/fixtures/resnet_v15).
MODEL=${H2T_TEST_MODEL:-test/fixtures/resnet_v15/model}
for c in features taps; do
    if ! has_cmd $c; then
        skip "$c: not in h2t --help"
    elif [ ! -f "$MODEL/config.txt" ]; then
        skip "$c: no model fixture at $MODEL"
    else
        for_each_bad | while IFS=$TAB read -r f word; do
            if [ $c = features ]; then
                refuse "features --images $f" "$T/F.npy" "$BAD/$f" "$word" -- "$H2T" features --model "$MODEL" \
                    --images "$BAD/$f" --target-size 64 --out "$T/F.npy" --quiet
            else
                refuse "taps --images $f" "$T/taps" "$BAD/$f" "$word" -- "$H2T" taps --model "$MODEL" \
                    --images "$BAD/$f" --out "$T/taps" --quiet
            fi
        done
    fi
done
# ---- well-formed .npy files with the wrong content (test/bad/semantic/)
SEM=$BAD/semantic
for c in score fit; do
    has_cmd $c || { skip "$c: not in h2t --help"; continue; }
    extra=""
    [ $c = fit ] && extra="--layout $FX/X.layout.tsv"
    while IFS=$TAB read -r f word; do
        refuse "$c --labels semantic/$f" "$T/o" "$SEM/$f" "$word" -- \
            "$H2T" $c --features "$FX/X.npy" --labels "$SEM/$f" $extra --out "$T/o" --quiet
    done <<EOF
labels_2d.npy${TAB}expected labels
labels_negative.npy${TAB}-1 at index 3
labels_fraction.npy${TAB}without loss
labels_short.npy${TAB}299
EOF
done
if [ -f "$MODEL/config.txt" ]; then
    # features and taps take the same images: uint8, n >= 1 (a shard may be empty)
    has_cmd features && while IFS=$TAB read -r f word; do
        refuse "features --images semantic/$f" "$T/F.npy" "$SEM/$f" "$word" -- \
            "$H2T" features --model "$MODEL" --images "$SEM/$f" --target-size 64 --out "$T/F.npy" --quiet
    done <<EOF
images_2ch.npy${TAB}expected images
images_f4.npy${TAB}|u1
images_f4_whole.npy${TAB}|u1
images_empty.npy${TAB}>= 1
EOF
    has_cmd taps && while IFS=$TAB read -r f word; do
        refuse "taps --images semantic/$f" "$T/taps" "$SEM/$f" "$word" -- \
            "$H2T" taps --model "$MODEL" --images "$SEM/$f" --out "$T/taps" --quiet
    done <<EOF
images_2ch.npy${TAB}expected images
images_f4.npy${TAB}|u1
images_f4_whole.npy${TAB}|u1
images_empty.npy${TAB}>= 1
EOF
fi
# ---- where the taps sit and which locations become features (docs/ALGORITHM.md §16)
if [ -f "$MODEL/config.txt" ] && has_cmd features; then
    IMG=test/fixtures/resnet_v15/images.npy
    VIT=test/fixtures/vit/model
    FE="--images $IMG --target-size 64 --out $T/F.npy --quiet"
    refuse "features --tap-fraction 2/3" "$T/F.npy" "--tap-fraction" "1/k" -- "$H2T" features --model "$MODEL" $FE \
        --tap-fraction 2/3
    refuse "features --tap-fraction 1/0" "$T/F.npy" "--tap-fraction" "1/0" -- "$H2T" features --model "$MODEL" $FE \
        --tap-fraction 1/0
    refuse "features --tap-point sideways" "$T/F.npy" "--tap-point" "pre-normalization" -- "$H2T" features \
        --model "$MODEL" $FE --tap-point sideways
    refuse "features --cls bogus" "$T/F.npy" "--cls" "original+cls" -- "$H2T" features --model "$MODEL" $FE --cls bogus
    refuse "features --cls only-cls of a ResNet" "$T/F.npy" "--cls only-cls" "token map" -- "$H2T" features \
        --model "$MODEL" $FE --cls only-cls
    refuse "features --tap-point of a ViT" "$T/F.npy" "--tap-point pre-activation" "ViT" -- "$H2T" features \
        --model "$VIT" --images test/fixtures/vit/images.npy --target-size 64 --out "$T/F.npy" --quiet \
        --tap-point pre-activation
    refuse "features --select with --tap-fraction" "$T/F.npy" "--select" "--tap-fraction" -- "$H2T" features \
        --model "$MODEL" $FE --select "$FX/y.npy" --layout "$FX/X.layout.tsv" --tap-fraction 1/4
    refuse "features --include-input=1" "$T/F.npy" "--include-input" "takes no value" -- "$H2T" features \
        --model "$MODEL" $FE --include-input=1
    refuse "taps --tap-point bogus" "$T/taps" "--tap-point" "post-activation" -- "$H2T" taps --model "$MODEL" \
        --images "$IMG" --out "$T/taps" --tap-point bogus --quiet
fi
if has_cmd run; then
    C=demo/tasks/clevr_count
    RUN="--model demo/backbone --train-images $C/train_images.npy --train-labels $C/train_labels.npy --test-images $C/test_images.npy --test-labels $C/test_labels.npy --target-size 64 --lr 0.1 --steps 5 --coef 1e-3 --fraction 0.05 --quiet"
    refuse "run --tap-fraction 1/0" "$T/run" "--tap-fraction" "" -- "$H2T" run $RUN --tap-fraction 1/0 --out "$T/run"
    refuse "run --score with --method linear" "$T/run" "--score" "head2toe" -- "$H2T" run $RUN --method linear \
        --score l1 --out "$T/run"
    refuse "run --keep-offset beyond D" "$T/run" "--keep-offset 5000" "beyond" -- "$H2T" run $RUN \
        --keep-offset 5000 --out "$T/run"
    refuse "run --train-fraction 2" "$T/run" "--train-fraction" "" -- "$H2T" run $RUN --train-fraction 2 --out "$T/run"
    refuse "run --cls only-cls of a ResNet" "$T/run" "--cls only-cls" "token map" -- "$H2T" run $RUN --cls only-cls \
        --out "$T/run"
    refuse "run --score chi2 with logits" "$T/run" "chi2" "non-negative" -- "$H2T" run $RUN --score chi2 --out "$T/run"
fi
# ---- h2t demo --experiments (the demo directory is the bundled one)
if has_cmd demo; then
    refuse "demo --experiments fig99" "$T/d" "--experiments" "fig99" -- "$H2T" demo --out "$T/d" --experiments fig99
    refuse "demo --experiments with --report" "$T/d" "--report" "experiments.md" -- "$H2T" demo --out "$T/d" \
        --experiments --report "$T/r.json"
    refuse "demo --experiments with an empty item" "$T/d" "--experiments" "''" -- "$H2T" demo --out "$T/d" \
        --experiments fig6,,fig13
fi
# ---- h2t bench: flags only (it reads and writes no files but --model's)
if has_cmd bench; then
    refuse "bench --arch resnet18" - "--arch" "resnet18" -- "$H2T" bench --arch resnet18 --quiet
    refuse "bench --input-size 100 (ViT)" - "--input-size" "multiple of 16" -- "$H2T" bench --arch vit_b_16 \
        --input-size 100 --quiet
    refuse "bench --batch 0" - "--batch" "integer" -- "$H2T" bench --batch 0 --quiet
    refuse "bench --seconds -1" - "--seconds" "number" -- "$H2T" bench --seconds -1 --quiet
    refuse "bench --gemm --sizes 10.5" - "--sizes" "whole" -- "$H2T" bench --gemm --sizes 10.5
    refuse "bench --gemm --sizes 0" - "--sizes" "" -- "$H2T" bench --gemm --sizes 0
    refuse "bench --model missing" - "$T/none/config.txt" "" -- "$H2T" bench --model "$T/none" --quiet
else
    skip "bench: not in h2t --help"
fi
exit 0
