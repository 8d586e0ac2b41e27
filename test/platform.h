/* test/platform.h: the calls outside ISO C that the C tests need and the
 * library does not (a fresh temporary directory, removing a tree, setting
 * a file's size), with
 * their Windows (mingw-w64) equivalents, so the unit tests run there too.
 * Creating one directory is util.h's make_dir. */
#ifndef H2T_TEST_PLATFORM_H
#define H2T_TEST_PLATFORM_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _WIN32
#include <direct.h> /* _mkdir, _rmdir */
#include <io.h>     /* _mktemp */
#include <unistd.h> /* truncate64 */
#else
#include <unistd.h> /* rmdir, truncate */
#endif

/* tmpl ends in XXXXXX: made unique and created (mkdtemp); NULL on failure. */
static inline char *temp_dir(char *tmpl)
{
#ifdef _WIN32
    return _mktemp(tmpl) && _mkdir(tmpl) == 0 ? tmpl : NULL;
#else
    return mkdtemp(tmpl);
#endif
}

static inline int remove_dir(const char *dir)
{
#ifdef _WIN32
    return _rmdir(dir);
#else
    return rmdir(dir);
#endif
}

/* Make path exactly size bytes long (a sparse file where the file system
 * allows); 0 or -1. mingw-w64's truncate takes a 32-bit size. */
static inline int set_file_size(const char *path, long long size)
{
#ifdef _WIN32
    return truncate64(path, size);
#else
    return truncate(path, (off_t)size);
#endif
}

/* rm -rf dir; 0 when nothing is left. */
static inline int remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[1024];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else remove(p);
    }
    if (d) closedir(d);
    return remove_dir(dir);
}

#endif
