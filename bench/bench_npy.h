/* bench_npy — the one .npy reader of the benchmarks (bench_ann,
 * bench_ann_exact): a float32 C-order 2-D array, version 1.0, as
 * cb_npy_write_f32 and `cbrec embed` write it; exits with a message naming
 * the file on anything else. */
#ifndef CB_BENCH_NPY_H
#define CB_BENCH_NPY_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *bench_read_npy(const char *prog, const char *path, size_t *n, size_t *d) {
    FILE *f = fopen(path, "rb");
    unsigned char head[10];
    if (!f || fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "%s: %s is not an .npy file\n", prog, path);
        exit(1);
    }
    size_t hl = head[8] | (size_t)head[9] << 8;
    char *h = malloc(hl + 1);
    unsigned long long a = 0, b = 0;
    const char *shape;
    if (!h || fread(h, 1, hl, f) != hl || (h[hl] = 0, !strstr(h, "'<f4'")) || strstr(h, "'fortran_order': True") ||
        !(shape = strstr(h, "'shape': (")) || sscanf(shape, "'shape': (%llu, %llu)", &a, &b) != 2 || !a || !b) {
        fprintf(stderr, "%s: %s: expected a 2-D little-endian float32 array\n", prog, path);
        exit(1);
    }
    free(h);
    float *v = malloc(a * b * sizeof *v);
    if (!v || fread(v, sizeof *v, a * b, f) != a * b) {
        fprintf(stderr, "%s: %s is truncated (or out of memory)\n", prog, path);
        exit(1);
    }
    fclose(f);
    *n = a, *d = b;
    return v;
}

#endif /* CB_BENCH_NPY_H */
