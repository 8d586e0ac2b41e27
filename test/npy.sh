# test/npy.sh: .npy files written from the shell, for the test and bench
# scripts (sourced: `. test/npy.sh`, from the repository root). The format
# is the one npy.c reads: version 1.0, C order, a header padded with spaces
# to a multiple of 64 bytes and ended by a newline.

# npy_header DESCR SHAPE: the header of an array of type DESCR ('|u1',
# '<i8', ...) and shape (SHAPE) ("8, 28, 28" or "300,"), to stdout; the
# data follows it
npy_header() {
    hdr="{'descr': '$1', 'fortran_order': False, 'shape': ($2), }"
    pad=$((63 - (10 + ${#hdr}) % 64))
    len=$((${#hdr} + pad + 1))
    printf '\223NUMPY\001\000'
    printf "\\$(printf %03o $((len % 256)))\\$(printf %03o $((len / 256)))"
    printf '%s%*s\n' "$hdr" $pad ''
}

# npy_rows IN OUT N DESCR SHAPE ROWBYTES: the first N rows (ROWBYTES each)
# of the version 1.0 file IN, of type DESCR, written to OUT with shape (SHAPE)
npy_rows() {
    hlen=$(od -An -tu1 -j8 -N2 "$1" | awk '{ print $1 + 256 * $2 + 10 }')
    { npy_header "$4" "$5"
      head -c $((hlen + $3 * $6)) "$1" | tail -c $(($3 * $6)) # (tail reads all: no SIGPIPE under pipefail)
    } >"$2"
}
