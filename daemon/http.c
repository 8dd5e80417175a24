/* SPDX-License-Identifier: Apache-2.0 */

#include <curl/curl.h>

#include "http.h"
#include "log.h"

struct HttpRequest {
        HttpClient *client;
        HttpRequest *next;
        CURL *easy;
        struct curl_slist *headers;
        char *body;
        size_t size, alloc, max_body;
        bool too_big;
        char error[CURL_ERROR_SIZE];
        const char *content_type; /* curl's, valid during the done callback */
        HttpDoneFn done;
        void *userdata;
};

/* Easy handles kept for the next request: curl_easy_init() and curl_easy_cleanup() are a good part
 * of the cost of a small request, and a daemon scraping a thousand targets makes a hundred a
 * second. curl_easy_reset() forgets every option of the previous request; connections live in the
 * multi handle's cache either way. */
#define HTTP_HANDLE_POOL 8

struct HttpClient {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        HttpRequest *requests;
        unsigned n_active;
        CURL *pool[HTTP_HANDLE_POOL];
        unsigned n_pool;
};

/* One io source per socket curl tells us about, kept as the socket's "socketp". */
typedef struct HttpSocket {
        sd_event_source *source;
} HttpSocket;

static void request_free(HttpRequest *req) {
        if (!req)
                return;
        if (req->easy) {
                HttpClient *c = req->client;

                if (c)
                        (void) curl_multi_remove_handle(c->multi, req->easy);
                if (c && c->n_pool < HTTP_HANDLE_POOL) {
                        curl_easy_reset(req->easy);
                        c->pool[c->n_pool++] = req->easy;
                } else
                        curl_easy_cleanup(req->easy);
        }
        curl_slist_free_all(req->headers);
        free(req->body);
        free(req);
}

static void unlink_request(HttpClient *c, HttpRequest *req) {
        for (HttpRequest **p = &c->requests; *p; p = &(*p)->next)
                if (*p == req) {
                        *p = req->next;
                        c->n_active--;
                        return;
                }
}

static void check_done(HttpClient *c) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                HttpRequest *req = NULL;
                long status = 0;
                int error = 0;
                char reason[CURL_ERROR_SIZE + 64] = "";

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
                if (!req)
                        continue;
                if (req->too_big) {
                        error = -EFBIG;
                        snprintf(reason, sizeof(reason), "response larger than %zu bytes", req->max_body);
                } else if (msg->data.result != CURLE_OK) {
                        /* A server that is not there is not a server that failed. */
                        error = msg->data.result == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
                                : msg->data.result == CURLE_COULDNT_CONNECT  ? -ECONNREFUSED
                                                                             : -EIO;
                        snprintf(reason, sizeof(reason), "%s", req->error[0] ? req->error : curl_easy_strerror(msg->data.result));
                } else {
                        (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
                        (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_CONTENT_TYPE, &req->content_type);
                }

                unlink_request(c, req);
                if (req->done)
                        req->done(req, error, status, req->body ?: "", req->size, reason, req->userdata);
                request_free(req);
        }
}

static int on_socket_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpClient *c = userdata;
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLPRI | EPOLLHUP))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                action |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(c->multi, fd, action, &running);
        check_done(c);
        return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        HttpClient *c = userp;
        HttpSocket *hs = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (hs) {
                        sd_event_source_disable_unref(hs->source);
                        free(hs);
                        (void) curl_multi_assign(c->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (hs) {
                if (sd_event_source_set_io_events(hs->source, events) < 0)
                        return -1;
                return 0;
        }
        hs = calloc(1, sizeof(HttpSocket));
        if (!hs)
                return -1;
        if (sd_event_add_io(c->event, &hs->source, fd, events, on_socket_io, c) < 0) {
                free(hs);
                return -1;
        }
        (void) curl_multi_assign(c->multi, fd, hs);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HttpClient *c = userdata;
        int running;

        (void) curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(c);
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        HttpClient *c = userp;
        uint64_t usec;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        (void) sd_event_now(c->event, CLOCK_MONOTONIC, &usec);
        usec += (uint64_t) timeout_ms * USEC_PER_MSEC;
        if (sd_event_source_set_time(c->timer, usec) < 0 || sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

int http_client_new(sd_event *event, HttpClient **ret) {
        _cleanup_(http_client_freep) HttpClient *c = NULL;
        static bool initialized = false;

        if (!initialized) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                initialized = true;
        }
        c = calloc(1, sizeof(HttpClient));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->multi = curl_multi_init();
        if (!c->multi)
                return -ENOMEM;
        if (sd_event_add_time(event, &c->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_timer, c) < 0)
                return -ENOMEM;
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
        /* Bound what a misbehaving local endpoint can make us hold open. */
        curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
        /* Keep idle connections for the next scrape. By default the cache holds four per request
         * in flight, so after a burst of scrapes most connections are closed and reopened ten
         * seconds later. */
        curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 256L);
        *ret = TAKE_PTR(c);
        return 0;
}

HttpClient *http_client_free(HttpClient *c) {
        if (!c)
                return NULL;
        while (c->requests) {
                HttpRequest *r = c->requests;
                c->requests = r->next;
                request_free(r);
        }
        while (c->n_pool > 0)
                curl_easy_cleanup(c->pool[--c->n_pool]);
        if (c->multi)
                curl_multi_cleanup(c->multi);
        sd_event_source_disable_unref(c->timer);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        HttpRequest *req = userdata;
        size_t n = size * nmemb;

        if (req->size + n > req->max_body) {
                req->too_big = true;
                return 0; /* aborts the transfer */
        }
        if (req->size + n + 1 > req->alloc) {
                size_t a = MAX(req->alloc * 2, req->size + n + 1);
                char *b;

                a = MIN(a, req->max_body + 1);
                b = realloc(req->body, a);
                if (!b)
                        return 0;
                req->body = b;
                req->alloc = a;
        }
        memcpy(req->body + req->size, ptr, n);
        req->size += n;
        req->body[req->size] = 0;
        return n;
}

static void apply_tls(CURL *e, const TlsOptions *tls) {
        if (!tls)
                return;
        if (tls->ca_file)
                curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
        if (tls->pinned_pubkey)
                curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, tls->pinned_pubkey);
        if (tls->client_cert)
                curl_easy_setopt(e, CURLOPT_SSLCERT, tls->client_cert);
        if (tls->client_key)
                curl_easy_setopt(e, CURLOPT_SSLKEY, tls->client_key);
}

int http_request_start(HttpClient *c, const HttpRequestSpec *spec, HttpRequest **ret) {
        HttpRequest *req;
        CURL *e;

        req = calloc(1, sizeof(HttpRequest));
        if (!req)
                return -ENOMEM;
        req->client = NULL;
        req->max_body = spec->max_body ?: 1024 * 1024;
        req->done = spec->done;
        req->userdata = spec->userdata;
        e = req->easy = c->n_pool > 0 ? c->pool[--c->n_pool] : curl_easy_init();
        if (!e) {
                request_free(req);
                return -ENOMEM;
        }
        curl_easy_setopt(e, CURLOPT_URL, spec->url);
        curl_easy_setopt(e, CURLOPT_PRIVATE, req);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->error);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,file");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) ((spec->timeout ?: 10 * USEC_PER_SEC) / USEC_PER_MSEC));
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) ((spec->timeout ?: 10 * USEC_PER_SEC) / USEC_PER_MSEC));
        curl_easy_setopt(e, CURLOPT_USERAGENT, "modelkeeperd/" PACKAGE_VERSION);
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) req->max_body);
        if (spec->gzip)
                curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
        if (spec->accept) {
                _cleanup_free_ char *h = NULL;
                if (asprintf(&h, "Accept: %s", spec->accept) > 0)
                        req->headers = curl_slist_append(req->headers, h);
        }
        if (spec->method && !streq(spec->method, "GET")) {
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method);
                if (streq(spec->method, "POST") || streq(spec->method, "PUT")) {
                        curl_easy_setopt(e, CURLOPT_POSTFIELDS, spec->body ?: "");
                        req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
                }
        }
        if (req->headers)
                curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
        apply_tls(e, spec->tls);

        if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
                request_free(req);
                return -EIO;
        }
        req->client = c;
        req->next = c->requests;
        c->requests = req;
        c->n_active++;
        if (ret)
                *ret = req;
        return 0;
}

void http_request_cancel(HttpRequest *req) {
        if (!req)
                return;
        unlink_request(req->client, req);
        request_free(req);
}

const char *http_request_content_type(const HttpRequest *req) {
        return req->content_type;
}

unsigned http_client_active(const HttpClient *c) {
        return c->n_active;
}
