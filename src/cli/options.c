/* options — the CLI's one option parser: a command's own options plus every
 * key of its configuration kind, and --help generated from the key table. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Is `section` in the comma-separated list (NULL: every section)? */
static bool section_taken(const char *list, const char *section) {
    if (!list) return true;
    size_t n = strlen(section);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, section, n)) return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* The key named `name` of `kind` within `sections`, into *info. */
static bool find_kind_key(cb_config_kind kind, const char *sections, const char *name, cb_config_key_info *info) {
    for (size_t i = 0; kind && i < cb_config_n_keys(kind); i++)
        if (cb_config_key(kind, i, info) == CB_OK && !strcmp(info->name, name)) return section_taken(sections, info->section);
    return false;
}

/* The second config of cli_parse2 (kind 0: none). */
typedef struct second_kind {
    cb_config_kind kind;
    const char *sections;
    const char *refused; /* ",key,...": keys of the first kind left out of --help */
} second_kind;

/* The key named `name` that c (or x) takes, into *info; *second: it is x's. */
static bool find_key2(const cli_command *c, const second_kind *x, const char *name, cb_config_key_info *info,
                      bool *second) {
    *second = false;
    if (find_kind_key(c->kind, c->sections, name, info)) return true;
    return (*second = x && find_kind_key(x->kind, x->sections, name, info));
}

static const cli_opt *find_opt(const cli_opt *o, const char *name, char short_name) {
    for (; o && o->name; o++)
        if (name ? !strcmp(o->name, name) : o->short_name == short_name) return o;
    return NULL;
}

/* Print `text` from column `col`, wrapped at 100 columns with continuation lines at `indent`. */
static void wrapped(FILE *f, const char *text, size_t col, size_t indent) {
    for (bool first = true; *text; first = false) {
        size_t word = strcspn(text, " ");
        if (!first && col + 1 + word > 100) {
            fprintf(f, "\n%*s", (int)indent, "");
            col = indent;
        } else if (!first) {
            fputc(' ', f);
            col++;
        }
        fwrite(text, 1, word, f);
        col += word;
        text += word;
        while (*text == ' ') text++;
    }
    fputc('\n', f);
}

static void help_line(FILE *f, const char *name, const char *hint, const char *help) {
    char left[64];
    snprintf(left, sizeof left, "%s%s%s", name, hint && *hint ? " " : "", hint ? hint : "");
    if (strlen(left) > 24) fprintf(f, "  --%s\n%29s", left, ""); /* too long for its column: the help below */
    else fprintf(f, "  --%-24s ", left);
    wrapped(f, help, 29, 29);
}

static void help2(FILE *f, const cli_command *c, const second_kind *x) {
    fputs(c->usage, f);
    for (const cli_opt *o = c->opts; o && o->name; o++) {
        char name[48];
        snprintf(name, sizeof name, "%s%s", o->name, o->short_name ? (char[]){',', ' ', '-', o->short_name, 0} : "");
        help_line(f, name, o->hint, o->help);
    }
    const char *last = "";
    size_t n1 = cb_config_n_keys(c->kind), n2 = x ? cb_config_n_keys(x->kind) : 0;
    for (size_t i = 0; c->kind && i < n1 + n2; i++) {
        cb_config_key_info k, k1;
        bool second = i >= n1;
        if (cb_config_key(second ? x->kind : c->kind, second ? i - n1 : i, &k) ||
            !section_taken(second ? x->sections : c->sections, k.section) ||
            (second && find_kind_key(c->kind, c->sections, k.name, &k1)) || (!second && x && x->refused && cli_key_listed(x->refused, k.name)))
            continue;
        if (strcmp(last, k.section)) fprintf(f, "%s:\n", last = k.section);
        char name[64], help[512];
        bool negated = k.is_bool && !strcmp(k.default_value, "true");
        snprintf(name, sizeof name, "%s%s", negated ? "[no-]" : "", k.name);
        if (k.is_bool) snprintf(help, sizeof help, "%s%s", k.help, negated ? " (default on)" : "");
        else snprintf(help, sizeof help, "%s (default %s)", k.help, *k.default_value ? k.default_value : "none");
        help_line(f, name, k.value_hint, help);
    }
}

void cli_help(FILE *f, const cli_command *c) { help2(f, c, NULL); }

int cli_usage_error(const cli_command *c, const char *msg) {
    char head[64], rest[1536];
    snprintf(head, sizeof head, "cbrec %s", c->name);
    size_t line = strcspn(c->usage, "\n");
    snprintf(rest, sizeof rest, ": %s\n%.*s   (cbrec %s --help for details)\n", msg, (int)line, c->usage, c->name);
    cb_utf8_repair(rest); /* an argument quoted whole or cut by "%.60s" */
    return cli_mpi_usage(head, rest);
}

/* The options c (and x) take that are close to `name`, as "--a, --b" into out;
 * how many: the command's own options and the keys of its sections only. */
static size_t cli_near_options(const cli_command *c, const second_kind *x, const char *name, char *out, size_t size) {
    size_t n1 = c->kind ? cb_config_n_keys(c->kind) : 0, n2 = x && x->kind ? cb_config_n_keys(x->kind) : 0, n = 0;
    size_t n_opts = 0;
    for (const cli_opt *o = c->opts; o && o->name; o++) n_opts++;
    const char **names = calloc(n_opts + n1 + n2 + 1, sizeof *names);
    if (!names) return 0;
    for (size_t i = 0; i < n_opts; i++) names[n++] = c->opts[i].name;
    for (size_t i = 0; i < n1 + n2; i++) {
        cb_config_key_info k;
        bool second = i >= n1;
        if (!cb_config_key(second ? x->kind : c->kind, second ? i - n1 : i, &k) &&
            section_taken(second ? x->sections : c->sections, k.section))
            names[n++] = k.name;
    }
    size_t found = cb_config_near_names(name, names, n, "--", out, size);
    free(names);
    return found;
}

/* --name [VALUE] as a key of c; *i advances past a value taken from argv. */
static int set_key(const cli_command *c, const second_kind *x, cb_config *cfg, cb_config *cfg2, const char *name,
                   const char *value, int *i, int argc, char **argv) {
    cb_config_key_info k;
    bool second = false;
    const char *v = value;
    char msg[700];
    bool negated = !find_key2(c, x, name, &k, &second) && !strncmp(name, "no-", 3) &&
                   find_key2(c, x, name + 3, &k, &second) && k.is_bool;
    if (negated && value) return snprintf(msg, sizeof msg, "--%s takes no value", name), cli_usage_error(c, msg);
    if (!negated && !find_key2(c, x, name, &k, &second)) {
        char near[300];
        if (!cli_near_options(c, x, name, near, sizeof near)) snprintf(msg, sizeof msg, "unknown option '--%s'", name);
        else snprintf(msg, sizeof msg, "unknown option '--%s' (did you mean %s?)", name, near);
        return cli_usage_error(c, msg);
    }
    if (second) cfg = cfg2;
    if (negated) v = "false";
    else if (!v && k.is_bool) v = "true";
    else if (!v && *i + 1 < argc) v = argv[++*i];
    else if (!v) return snprintf(msg, sizeof msg, "--%s needs a value (%s)", name, k.value_hint), cli_usage_error(c, msg);
    /* a blank allow list is the library's "not given" (every item): as the server and Python, refused here */
    if (!strcmp(k.name, "allow") && !v[strspn(v, " \t")])
        return cli_usage_error(c, "--allow: the list names no item (leave it out to allow every item)");
    cb_error err = {0};
    if (cb_config_set(cfg, k.name, v, &err)) return snprintf(msg, sizeof msg, "--%s", err.msg), cli_usage_error(c, msg);
    return -1;
}

static int set_opt(const cli_command *c, const cli_opt *o, const char *value, int *i, int argc, char **argv) {
    char msg[200];
    if (!o->hint) {
        if (value) return snprintf(msg, sizeof msg, "--%s takes no value", o->name), cli_usage_error(c, msg);
        *o->flag = true;
        return -1;
    }
    if (!value && *i + 1 >= argc) return snprintf(msg, sizeof msg, "--%s needs a value (%s)", o->name, o->hint), cli_usage_error(c, msg);
    if (o->list && o->list->n == o->list->cap)
        return snprintf(msg, sizeof msg, "at most %zu --%s", o->list->cap, o->name), cli_usage_error(c, msg);
    if (!value) value = argv[++*i];
    if (o->list) o->list->values[o->list->n++] = value;
    else *o->value = value;
    return -1;
}

static int parse(const cli_command *c, const second_kind *x, cb_config *cfg, cb_config *cfg2, int argc, char **argv);

int cli_parse(const cli_command *c, cb_config *cfg, int argc, char **argv) { return parse(c, NULL, cfg, NULL, argc, argv); }

int cli_parse2(const cli_command *c, cb_config *cfg, cb_config_kind kind2, const char *sections2, cb_config *cfg2,
               const char *refused, int argc, char **argv) {
    second_kind x = {kind2, sections2, refused};
    return parse(c, &x, cfg, cfg2, argc, argv);
}

static int parse(const cli_command *c, const second_kind *x, cb_config *cfg, cb_config *cfg2, int argc, char **argv) {
    char msg[300];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            int st = cli_mpi_help(c->name); /* under mpirun rank 0 prints it */
            if (st < 0) help2(stdout, c, x);
            return st < 0 ? CLI_OK : st;
        }
        int st;
        if (a[0] == '-' && a[1] && a[1] != '-' && !a[2]) {
            const cli_opt *o = find_opt(c->opts, NULL, a[1]);
            if (!o) return snprintf(msg, sizeof msg, "unknown option '%s'", a), cli_usage_error(c, msg);
            st = set_opt(c, o, NULL, &i, argc, argv);
        } else if (a[0] == '-' && a[1] == '-' && a[2]) {
            char name[128];
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (len >= sizeof name) return snprintf(msg, sizeof msg, "unknown option '%.60s...'", a), cli_usage_error(c, msg);
            memcpy(name, a + 2, len);
            name[len] = 0;
            const cli_opt *o = find_opt(c->opts, name, 0);
            st = o ? set_opt(c, o, eq ? eq + 1 : NULL, &i, argc, argv)
                   : set_key(c, x, cfg, cfg2, name, eq ? eq + 1 : NULL, &i, argc, argv);
        } else {
            return snprintf(msg, sizeof msg, "unexpected argument '%s'", a), cli_usage_error(c, msg);
        }
        if (st >= 0) return st;
    }
    return -1;
}

int cli_check_output(const char *cmd, const char *out, const char *model, const char *const *inputs, size_t n_inputs) {
    if (cli_mpi_launched_rank() > 0) return -1; /* under mpirun rank 0 alone writes: it alone checks */
    cb_error err = {0};
    char history[4096];
    if (model && (size_t)snprintf(history, sizeof history, "%s.history", model) >= sizeof history)
        return cli_fail(CLI_ERROR, cmd, "%s: path too long", model);
    int rc = model ? cb_file_check_not_input(out, model, &err) || cb_file_check_not_input(out, history, &err) : CB_OK;
    for (size_t i = 0; !rc && i < n_inputs; i++) rc = inputs[i] && cb_file_check_not_input(out, inputs[i], &err);
    if (rc || cb_file_check_writable(out, &err)) return cli_error(cmd, &err);
    return -1;
}

const char *cli_changed_key(const cb_config *cfg, cb_config_kind kind, size_t i, cb_config_key_info *k) {
    if (cb_config_key(kind, i, k)) return NULL;
    const char *v = cb_config_get(cfg, k->name);
    return v && strcmp(v, k->default_value) ? v : NULL;
}

bool cli_key_listed(const char *keys, const char *name) {
    char key[72];
    snprintf(key, sizeof key, ",%s,", name);
    return strstr(keys, key) != NULL;
}

const char *cli_ignored_key(const cb_config *cfg, cb_config_kind kind, const char *keys) {
    for (size_t i = 0; i < cb_config_n_keys(kind); i++) {
        cb_config_key_info k;
        if (!cb_config_key(kind, i, &k) && cb_config_given(cfg, k.name) && cli_key_listed(keys, k.name))
            return k.name;
    }
    return NULL;
}
