/* test/fuzz/fuzz_config.c: libFuzzer harness for the `key = value` config
 * parser (util.c config_parse) and its typed getters. Properties checked
 * beyond "no crash": every stored key and value is NUL-terminated within
 * its field, keys are [A-Za-z0-9_]+ and unique, values are non-empty, and
 * config_get finds each stored key. Build and run: `make fuzz`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_config: property violated: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy without a terminating NUL, so reads past the end are caught */
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);
    static config c;
    if (config_parse(text, size, "fuzz.txt", &c) == 0) {
        if (c.n < 0 || c.n > CONFIG_MAX_ENTRIES) fail("entry count out of range");
        for (int i = 0; i < c.n; i++) {
            if (!memchr(c.key[i], 0, CONFIG_MAX_KEY) || !memchr(c.value[i], 0, CONFIG_MAX_VALUE))
                fail("unterminated key or value");
            if (!c.key[i][0] || !c.value[i][0]) fail("empty key or value");
            for (const char *k = c.key[i]; *k; k++)
                if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '_'))
                    fail("key with a character outside [A-Za-z0-9_]");
            if (config_get(&c, c.key[i]) != c.value[i]) fail("duplicate key or config_get mismatch");
            int iv, list[8], n;
            double dv;
            static const char *const choices[] = {"resnet50", "vit", "v1.5", "v2", NULL};
            (void)config_int(&c, c.key[i], 1, -1000, 1000000, &iv);
            (void)config_double(&c, c.key[i], 1, &dv);
            (void)config_int_list(&c, c.key[i], 1, list, 8, &n);
            (void)config_choice(&c, c.key[i], 1, choices, &iv);
            long lv;
            (void)parse_long(c.value[i], &lv);
            (void)parse_double(c.value[i], &dv);
        }
        static const char *const allowed[] = {"arch", "input_size", "normalize", "variant", "units", NULL};
        (void)config_check_keys(&c, allowed);
    }
    free(text);
    return 0;
}
