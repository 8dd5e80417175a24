/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A small asynchronous HTTP client for the daemon: libcurl's multi interface driven by sd-event
 * (CURLMOPT_SOCKETFUNCTION → sd_event_add_io, CURLMOPT_TIMERFUNCTION → a time source), so that
 * readiness checks, reload requests and metric scrapes never block the loop. Bodies are capped
 * while they arrive. The daemon only looks at status codes and at metrics text from the local
 * model server; downloads of releases happen in the agent.
 */

#include <systemd/sd-event.h>

#include "config.h"
#include "macros.h"

typedef struct HttpClient HttpClient;
typedef struct HttpRequest HttpRequest;

/* error < 0: transport failure (reason says what); else status is the HTTP status (or 0 for
 * file://, which curl reports as success). body is NUL-terminated, valid during the call. */
typedef void (*HttpDoneFn)(HttpRequest *req, int error, long status, const char *body, size_t size,
                           const char *reason, void *userdata);

typedef struct HttpRequestSpec {
        const char *method;          /* NULL: GET */
        const char *url;
        const char *body;            /* for POST/PUT */
        const char *accept;          /* Accept: header */
        const TlsOptions *tls;
        uint64_t timeout;            /* usec, whole transfer */
        size_t max_body;             /* larger bodies fail with -EFBIG */
        bool gzip;                   /* accept a compressed body */
        HttpDoneFn done;
        void *userdata;
} HttpRequestSpec;

int http_client_new(sd_event *event, HttpClient **ret);
HttpClient *http_client_free(HttpClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpClient *, http_client_free);

int http_request_start(HttpClient *c, const HttpRequestSpec *spec, HttpRequest **ret);
/* Stop a request; its callback is not called. */
void http_request_cancel(HttpRequest *req);
/* The response's Content-Type (NULL when none, e.g. file://); valid only during the done callback. */
const char *http_request_content_type(const HttpRequest *req) _pure_;
unsigned http_client_active(const HttpClient *c) _pure_;
