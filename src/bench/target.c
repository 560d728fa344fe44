/* Starting, watching and stopping the brokers under test. */
#include "bench/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define READY_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 10000

static const char *const broker_names[] = {"external", "vigil", "vigil-engine-off", "mosquitto",
                                           "relay"};

const char *bench_broker_name(uint8_t kind)
{
    return kind < sizeof broker_names / sizeof broker_names[0] ? broker_names[kind] : "unknown";
}

int bench_broker_parse(const char *name)
{
    for (size_t i = 1; i < sizeof broker_names / sizeof broker_names[0]; i++)
        if (strcmp(name, broker_names[i]) == 0)
            return (int)i;
    return -1;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

uint16_t bench_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    uint16_t port = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool port_accepts(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Runs argv with stdout and stderr appended to log_path. Returns the PID,
 * or -1 with errno set. */
static pid_t spawn(char *const argv[], const char *log_path, const char *cwd)
{
    pid_t pid;
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

    if (fd < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);

        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (cwd != NULL && chdir(cwd) != 0)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGXFSZ, SIG_DFL);
        /* The broker must not outlive a benchmark that is killed. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execv(argv[0], argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    return pid;
}

/* Waits for pid; returns its exit status, or -1 if still running after
 * timeout_ms. */
static int wait_exit(pid_t pid, unsigned timeout_ms)
{
    int status;

    for (unsigned waited = 0;; waited += 20) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0)
            return 255;
        if (waited >= timeout_ms)
            return -1;
        sleep_ms(20);
    }
}

static vigil_err wait_ready(struct bench_target *t, char *err, size_t errcap)
{
    for (unsigned waited = 0; waited < READY_TIMEOUT_MS; waited += 50) {
        int status = wait_exit(t->pid, 0);

        if (status >= 0) {
            snprintf(err, errcap, "%s exited with status %d before listening; see %s/broker.log",
                     t->name, status, t->dir);
            t->pid = 0;
            return VIGIL_ERR_IO;
        }
        if (port_accepts(t->port) && (t->tls_port == 0 || port_accepts(t->tls_port)))
            return VIGIL_OK;
        sleep_ms(50);
    }
    snprintf(err, errcap, "%s did not listen on 127.0.0.1:%u within %d s; see %s/broker.log",
             t->name, t->port, READY_TIMEOUT_MS / 1000, t->dir);
    return VIGIL_ERR_IO;
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    bool ok;

    if (f == NULL)
        return false;
    ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* vigil reads limits and the engine switch from a configuration file; the
 * listeners come from the command line. */
static pid_t start_vigil(const struct bench_launch *l, struct bench_target *t, bool engine)
{
    char conf[600], yaml[256], data[600], mqtt[64], mqtts[64], log[600];
    const char *data_dir = data;
    char *argv[16];
    int n = 0;

    snprintf(conf, sizeof conf, "%s/vigil.yaml", t->dir);
    snprintf(yaml, sizeof yaml, "limits:\n  max_connections: %u\n%s", l->max_connections,
             engine ? "" : "secmon:\n  enabled: false\n");
    if (!write_file(conf, yaml))
        return -1;
    snprintf(data, sizeof data, "%s/data", t->dir);
    if (l->tls != NULL)
        data_dir = l->tls->data_dir; /* the inventory that contains the TLS device */
    snprintf(mqtt, sizeof mqtt, "127.0.0.1:%u", t->port);
    snprintf(mqtts, sizeof mqtts, "127.0.0.1:%u", t->tls_port);
    snprintf(log, sizeof log, "%s/broker.log", t->dir);
    argv[n++] = (char *)l->vigil_bin;
    argv[n++] = "serve";
    argv[n++] = "-c";
    argv[n++] = conf;
    argv[n++] = "--data-dir";
    argv[n++] = (char *)data_dir;
    argv[n++] = "--mqtt";
    argv[n++] = mqtt;
    argv[n++] = "--anonymous";
    if (l->tls != NULL) {
        argv[n++] = "--mqtts";
        argv[n++] = mqtts;
    }
    argv[n] = NULL;
    return spawn(argv, log, t->dir);
}

static void mosquitto_tls_lines(const struct bench_launch *l, const struct bench_target *t,
                                char *out, size_t cap)
{
    const struct bench_tls_files *f = l->tls;

    if (f == NULL) {
        out[0] = '\0';
        return;
    }
    snprintf(out, cap,
             "listener %u 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
             "require_certificate true\nuse_identity_as_username true\n",
             t->tls_port, f->ca, f->server_cert, f->server_key);
}

/* Debian's mosquitto 2.0 with its defaults, except the listener, anonymous
 * access, persistence, set_tcp_nodelay and running as root. vigil sets
 * TCP_NODELAY on every connection, and without it Nagle's algorithm delays
 * small deliveries by tens of milliseconds. As root mosquitto would switch
 * to the user "mosquitto", which cannot read the temporary directory. */
static pid_t start_mosquitto(const struct bench_launch *l, struct bench_target *t)
{
    char conf[600], text[4096], tls[3000], log[600];
    char *argv[] = {(char *)l->mosquitto_bin, "-c", conf, NULL};

    mosquitto_tls_lines(l, t, tls, sizeof tls);
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", t->dir);
    snprintf(text, sizeof text,
             "user root\nset_tcp_nodelay true\nlistener %u 127.0.0.1\nallow_anonymous true\n"
             "persistence %s\npersistence_location %s/\nlog_dest stderr\n%s",
             t->port, l->persistence ? "true" : "false", t->dir, tls);
    snprintf(log, sizeof log, "%s/broker.log", t->dir);
    if (!write_file(conf, text))
        return -1;
    return spawn(argv, log, t->dir);
}

static pid_t start_relay(const struct bench_launch *l, struct bench_target *t)
{
    char addr[64], log[600];
    char *argv[] = {(char *)l->vigil_bin, "bench", "--relay", addr, NULL};

    snprintf(addr, sizeof addr, "127.0.0.1:%u", t->port);
    snprintf(log, sizeof log, "%s/broker.log", t->dir);
    return spawn(argv, log, t->dir);
}

static vigil_err make_dir(const struct bench_launch *l, struct bench_target *t)
{
    snprintf(t->dir, sizeof t->dir, "%s/%s-XXXXXX", l->work_dir, t->name);
    return mkdtemp(t->dir) != NULL ? VIGIL_OK : VIGIL_ERR_IO;
}

vigil_err bench_target_start(uint8_t kind, const struct bench_launch *l, struct bench_target *t,
                             char *err, size_t errcap)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    snprintf(t->name, sizeof t->name, "%s", bench_broker_name(kind));
    snprintf(t->host, sizeof t->host, "127.0.0.1");
    t->port = bench_free_port();
    t->tls = kind != BENCH_BROKER_RELAY ? l->tls : NULL;
    t->tls_port = t->tls != NULL ? bench_free_port() : 0;
    if (t->port == 0 || (t->tls != NULL && t->tls_port == 0) || make_dir(l, t) != VIGIL_OK) {
        snprintf(err, errcap, "cannot prepare %s: %s", t->name, strerror(errno));
        return VIGIL_ERR_IO;
    }
    if (kind == BENCH_BROKER_VIGIL || kind == BENCH_BROKER_VIGIL_NOENGINE)
        t->pid = start_vigil(l, t, kind == BENCH_BROKER_VIGIL);
    else if (kind == BENCH_BROKER_MOSQUITTO)
        t->pid = start_mosquitto(l, t);
    else
        t->pid = start_relay(l, t);
    if (t->pid <= 0) {
        snprintf(err, errcap, "cannot start %s: %s", t->name, strerror(errno));
        t->pid = 0;
        return VIGIL_ERR_IO;
    }
    t->owned = true;
    log_info("bench: started %s (pid %d) on 127.0.0.1:%u in %s", t->name, (int)t->pid, t->port,
             t->dir);
    return wait_ready(t, err, errcap);
}

bool bench_target_alive(const struct bench_target *t)
{
    if (!t->owned)
        return true;
    return t->pid > 0 && waitpid(t->pid, NULL, WNOHANG) == 0;
}

bool bench_target_stop(struct bench_target *t)
{
    int status;

    if (!t->owned || t->pid <= 0)
        return !t->owned;
    if (kill(t->pid, SIGTERM) != 0)
        return false;
    status = wait_exit(t->pid, STOP_TIMEOUT_MS);
    if (status < 0) {
        log_warn("bench: %s (pid %d) did not exit within %d s of SIGTERM; sending SIGKILL",
                 t->name, (int)t->pid, STOP_TIMEOUT_MS / 1000);
        kill(t->pid, SIGKILL);
        wait_exit(t->pid, STOP_TIMEOUT_MS);
    }
    t->pid = 0;
    return status == 0;
}

/* Runs argv to completion with output in log_path; returns its status. */
static int run_tool(char *const argv[], const char *log_path)
{
    pid_t pid = spawn(argv, log_path, NULL);

    return pid < 0 ? 127 : wait_exit(pid, 60000);
}

static void tls_paths(const char *dir, struct bench_tls_files *f)
{
    snprintf(f->client_id, sizeof f->client_id, "bench-tls");
    snprintf(f->data_dir, sizeof f->data_dir, "%s/tls", dir);
    snprintf(f->ca, sizeof f->ca, "%s/pki/ca.crt", f->data_dir);
    snprintf(f->server_cert, sizeof f->server_cert, "%s/pki/server.crt", f->data_dir);
    snprintf(f->server_key, sizeof f->server_key, "%s/pki/server.key", f->data_dir);
    snprintf(f->client_cert, sizeof f->client_cert, "%s/provision/%s.crt", f->data_dir,
             f->client_id);
    snprintf(f->client_key, sizeof f->client_key, "%s/provision/%s.key", f->data_dir,
             f->client_id);
}

vigil_err bench_tls_prepare(const char *vigil_bin, const char *work_dir,
                            struct bench_tls_files *out, char *err, size_t errcap)
{
    char log[600];
    char *add[] = {(char *)vigil_bin, "device", "add", out->client_id, "--data-dir",
                   out->data_dir, "--quiet", NULL};
    struct bench_launch l = {.vigil_bin = vigil_bin, .work_dir = work_dir, .tls = out,
                             .max_connections = 1000};
    struct bench_target t;
    vigil_err rc;

    tls_paths(work_dir, out);
    snprintf(log, sizeof log, "%s/tls-setup.log", work_dir);
    if (run_tool(add, log) != 0) {
        snprintf(err, errcap, "vigil device add failed; see %s", log);
        return VIGIL_ERR_IO;
    }
    /* The server certificate is issued at the first start of the hub. */
    rc = bench_target_start(BENCH_BROKER_VIGIL, &l, &t, err, errcap);
    bench_target_stop(&t);
    if (rc == VIGIL_OK && access(out->server_cert, R_OK) != 0) {
        snprintf(err, errcap, "%s was not issued", out->server_cert);
        rc = VIGIL_ERR_IO;
    }
    return rc;
}
