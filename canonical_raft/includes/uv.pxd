# Declarations from <uv.h>: only what the binding uses (cimported
# qualified: `from .includes cimport uv`, then `uv.uv_close(...)`).

cdef extern from "uv.h" nogil:
    ctypedef struct uv_loop_t:
        pass

    ctypedef struct uv_handle_t:
        pass

    ctypedef struct uv_async_t:
        void *data

    ctypedef struct uv_prepare_t:
        void *data

    ctypedef struct uv_work_t:
        void *data

    ctypedef void (*uv_work_cb)(uv_work_t *req) noexcept
    ctypedef void (*uv_after_work_cb)(uv_work_t *req, int status) noexcept
    int uv_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work_cb,
                      uv_after_work_cb after_work_cb)

    ctypedef struct uv_stream_t:
        pass

    ctypedef struct uv_tcp_t:
        pass

    int uv_tcp_nodelay(uv_tcp_t *handle, int enable)

    ctypedef unsigned long uv_thread_t
    ctypedef struct uv_mutex_t:
        pass
    ctypedef struct uv_cond_t:
        pass

    ctypedef enum uv_run_mode:
        UV_RUN_DEFAULT

    ctypedef void (*uv_close_cb)(uv_handle_t *handle) noexcept
    ctypedef void (*uv_async_cb)(uv_async_t *handle) noexcept
    ctypedef void (*uv_prepare_cb)(uv_prepare_t *handle) noexcept
    ctypedef void (*uv_thread_cb)(void *arg) noexcept

    const char *uv_strerror(int err)

    int uv_loop_init(uv_loop_t *loop)
    int uv_loop_close(uv_loop_t *loop)
    int uv_run(uv_loop_t *loop, uv_run_mode mode)

    void uv_close(uv_handle_t *handle, uv_close_cb close_cb)

    int uv_async_init(uv_loop_t *loop, uv_async_t *handle, uv_async_cb cb)
    int uv_async_send(uv_async_t *handle)

    int uv_prepare_init(uv_loop_t *loop, uv_prepare_t *handle)
    int uv_prepare_start(uv_prepare_t *handle, uv_prepare_cb cb)

    int uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg)
    int uv_thread_join(uv_thread_t *tid)

    int uv_mutex_init(uv_mutex_t *handle)
    void uv_mutex_destroy(uv_mutex_t *handle)
    void uv_mutex_lock(uv_mutex_t *handle)
    void uv_mutex_unlock(uv_mutex_t *handle)

    int uv_cond_init(uv_cond_t *cond)
    void uv_cond_destroy(uv_cond_t *cond)
    void uv_cond_broadcast(uv_cond_t *cond)
    int uv_cond_timedwait(uv_cond_t *cond, uv_mutex_t *mutex,
                          unsigned long long timeout)

    unsigned long long uv_hrtime()
