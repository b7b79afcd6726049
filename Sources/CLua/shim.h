// Thin C surface for Lua 5.4. Lua's function-like macros cannot be called from
// Swift, so each one used by the library gets a prefixed static inline shim.
//
// Rule: Lua raises errors with longjmp, which must never cross a Swift frame.
// So everything that can raise (allocation, luaL_error, metamethods) runs in
// these C functions under lua_pcall; Swift callbacks only read the stack and
// fill a clua_reply, which the C trampoline turns into results or an error.
#ifndef TASK_SCHEDULER_CLUA_SHIM_H
#define TASK_SCHEDULER_CLUA_SHIM_H

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline void clua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline const char *clua_tostring(lua_State *L, int i) {
    /* Strings only: lua_tostring converts numbers in place, which allocates. */
    return lua_type(L, i) == LUA_TSTRING ? lua_tostring(L, i) : NULL;
}
static inline lua_Integer clua_tointeger(lua_State *L, int i) { return lua_tointeger(L, i); }
static inline lua_Number clua_tonumber(lua_State *L, int i) { return lua_tonumber(L, i); }
static inline int clua_istable(lua_State *L, int n) { return lua_istable(L, n); }
static inline int clua_isnoneornil(lua_State *L, int n) { return lua_isnoneornil(L, n); }
static inline int clua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline void clua_gc_collect(lua_State *L) { lua_gc(L, LUA_GCCOLLECT); }
/* Generational mode: process() makes a few short-lived tables per message,
 * which a young collection frees cheaply. */
static inline void clua_gc_generational(lua_State *L) { lua_gc(L, LUA_GCGEN, 0, 0); }

/* ---- Budgets ------------------------------------------------------------
 * One clua_control per lua_State, passed as the allocator's user data so the
 * count hook of any coroutine (and the string matcher) finds it with
 * lua_getallocf. It holds the memory cap and the budget of the call in
 * progress: instructions left, shared by every coroutine the call runs, and a
 * wall-clock deadline checked in the hook, so time spent in C counts. */

/* CLUA_OUTPUT: the bindings' per-call count or bytes of emits (Swift side). */
enum { CLUA_WITHIN = 0, CLUA_INSTRUCTIONS = 1, CLUA_TIME = 2, CLUA_MEMORY = 3, CLUA_OUTPUT = 4 };
enum { CLUA_PERIOD = 1000 };  /* most instructions between two hook calls */
enum { CLUA_BINDINGS = 7 };

typedef struct clua_reply clua_reply;
/* A Swift binding: reads its arguments (never allocating), fills `reply`. */
typedef void (*clua_binding)(lua_State *L, void *context, clua_reply *reply);

typedef struct {
    size_t used;
    size_t limit;
    /* Extra room granted to the message handler, so a call that failed near
     * the cap still gets its message and traceback. */
    size_t slack;
    long long remaining;    /* instructions left in this call */
    long long deadline_ns;  /* CLOCK_MONOTONIC */
    long long checked_ns;   /* when the hook last looked at the clock */
    int period;
    int exhausted;          /* the first budget broken in this call */
    int where_line;         /* where it was broken */
    char where_src[LUA_IDSIZE];
    int last_line;          /* position seen by the last hook call */
    char last_src[LUA_IDSIZE];
    int memory_line;        /* last_* when the allocator last refused */
    char memory_src[LUA_IDSIZE];
    void *context;          /* the bindings' Swift object */
    clua_binding bindings[CLUA_BINDINGS];
    /* The Lua name of each binding in the scheduler table ("_emit", ...);
     * NULL leaves a slot unused. Set by Swift (the core's, then the
     * features'), static strings that outlive the state. */
    const char *names[CLUA_BINDINGS];
    /* The process_columns batch of the running call (identity only) and its
     * request; both NULL outside that call (cleared by clua_end_call, which
     * cannot fail), so batch.headers never reads freed messages. */
    const void *batch_table;
    const void *batch_request;
    /* The request whose messages the live msg tables read (process,
     * process_batch); NULL outside those calls (cleared by clua_end_call). */
    const void *msg_request;
} clua_control;

static inline long long clua_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static inline clua_control *clua_control_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (clua_control *)ud;
}

static inline const char *clua_budget_text(int kind) {
    switch (kind) {
    case CLUA_INSTRUCTIONS: return "instruction limit exceeded";
    case CLUA_TIME: return "time limit exceeded";
    case CLUA_MEMORY: return "memory limit exceeded";
    case CLUA_OUTPUT: return "emit limit exceeded";
    default: return "limit exceeded";
    }
}

static inline void clua_copy_src(char *to, const char *from) {
    strncpy(to, from, LUA_IDSIZE - 1);
    to[LUA_IDSIZE - 1] = '\0';
}

/* lua_newstate's allocator with a cap. Returning NULL makes Lua raise
 * "not enough memory" (LUA_ERRMEM) in the running call. */
static inline void *clua_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    clua_control *c = (clua_control *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        c->used -= old;
        return NULL;
    }
    if (nsize > old && c->used - old + nsize > c->limit + c->slack) {
        c->memory_line = c->last_line;
        memcpy(c->memory_src, c->last_src, LUA_IDSIZE);
        return NULL;
    }
    void *block = realloc(ptr, nsize);
    if (block) c->used = c->used - old + nsize;
    return block;
}

/* Last resort: every call is protected, so a panic is a bug. Say so before
 * Lua aborts. */
static inline int clua_panic(lua_State *L) {
    const char *message = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object is not a string)";
    fprintf(stderr, "task-scheduler: unprotected Lua error, aborting: %s\n", message);
    fflush(stderr);
    return 0;
}

static inline lua_State *clua_newstate_limited(clua_control *control) {
    lua_State *L = lua_newstate(clua_limited_alloc, control);
    if (L) lua_atpanic(L, clua_panic);
    return L;
}

static inline void clua_mark(clua_control *c, int kind, const char *src, int line) {
    if (c->exhausted) return;
    c->exhausted = kind;
    c->where_line = line;
    clua_copy_src(c->where_src, src ? src : "?");
}

/* Count hook, copied by Lua into every coroutine: each call charges what
 * that thread ran since its last call to the shared budget. Once a budget is
 * broken, every thread's next instruction fails, so pcall or
 * coroutine.resume cannot swallow the error and go on. */
static inline void clua_budget_hook(lua_State *L, lua_Debug *ar) {
    clua_control *c = clua_control_of(L);
    int charged = lua_gethookcount(L);
    int located = lua_getinfo(L, "Sl", ar);
    if (located) {
        c->last_line = ar->currentline;
        clua_copy_src(c->last_src, ar->short_src);
    }
    if (!c->exhausted) {
        c->remaining -= charged;
        long long now = clua_now_ns();
        int kind = c->remaining <= 0 ? CLUA_INSTRUCTIONS : (now >= c->deadline_ns ? CLUA_TIME : CLUA_WITHIN);
        if (kind == CLUA_WITHIN) {
            /* Instructions that call slow C functions (MiB-sized strings)
             * would see the clock too rarely: check it more often then, and
             * less often (up to CLUA_PERIOD) while they are fast. */
            if (now - c->checked_ns > 2000000LL) c->period = c->period / 4 > 16 ? c->period / 4 : 16;
            else if (now - c->checked_ns < 200000LL && c->period < CLUA_PERIOD) c->period = c->period * 2 < CLUA_PERIOD ? c->period * 2 : CLUA_PERIOD;
            c->checked_ns = now;
            if (charged != c->period) lua_sethook(L, clua_budget_hook, LUA_MASKCOUNT, c->period);
            return;
        }
        clua_mark(c, kind, located ? ar->short_src : NULL, located ? ar->currentline : 0);
    }
    if (charged != 1) lua_sethook(L, clua_budget_hook, LUA_MASKCOUNT, 1);
    /* lua_error, not luaL_error: that would prefix another position. */
    if (located && ar->currentline > 0)
        lua_pushfstring(L, "%s:%d: %s", ar->short_src, ar->currentline, clua_budget_text(c->exhausted));
    else
        lua_pushstring(L, clua_budget_text(c->exhausted));
    lua_error(L);
}

/* Starts the budget of one call. */
static inline void clua_begin_call(lua_State *L, long long instructions, long long milliseconds) {
    clua_control *c = clua_control_of(L);
    c->remaining = instructions;
    /* Start short, so the first look at the clock comes soon even if the
     * first instructions are slow; the hook lengthens the period. */
    c->period = instructions < 64 ? (int)(instructions > 0 ? instructions : 1) : 64;
    c->checked_ns = clua_now_ns();
    c->deadline_ns = c->checked_ns + milliseconds * 1000000LL;
    c->exhausted = CLUA_WITHIN;
    c->slack = 0;
    c->last_line = 0;
    c->last_src[0] = '\0';
    c->memory_line = 0;
    c->memory_src[0] = '\0';
    lua_sethook(L, clua_budget_hook, LUA_MASKCOUNT, c->period);
}

static inline void clua_end_call(lua_State *L) {
    clua_control *c = clua_control_of(L);
    c->slack = 0;
    c->batch_table = NULL;
    c->batch_request = NULL;
    c->msg_request = NULL;
    lua_sethook(L, NULL, 0, 0);
}

/* Charges `steps` of C work (the pattern matcher) to the call's budget;
 * returns the budget that is broken, if any. */
static inline int clua_charge(clua_control *c, long long steps) {
    if (c->exhausted) return c->exhausted;
    c->remaining -= steps;
    if (c->remaining <= 0) return CLUA_INSTRUCTIONS;
    if (clua_now_ns() >= c->deadline_ns) return CLUA_TIME;
    return CLUA_WITHIN;
}

/* Wraps coroutine.create and coroutine.wrap: a coroutine that dies before
 * its hook fires is charged a whole hook period up front, so creating many
 * short coroutines cannot run unaccounted instructions. */
static inline int clua_charged_call(lua_State *L) {
    clua_control *c = clua_control_of(L);
    c->remaining -= CLUA_PERIOD;  /* no thread's hook period is longer */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* glibc's memmem (linear: two-way search), declared here because Swift's
 * Glibc module is built without _GNU_SOURCE. */
void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
static inline long long clua_memfind(const char *haystack, size_t length, const char *needle, size_t needle_length) {
    const char *hit = (const char *)memmem(haystack, length, needle, needle_length);
    return hit ? (long long)(hit - haystack) : -1;
}

/* Calls upvalue 1 with the arguments. Wrapping the prelude's Lua versions of
 * library functions in this C frame keeps the script's frame on the stack
 * when a script tail-calls them (`return string.find(...)`), so their errors
 * can still name the script's line. */
static inline int clua_shield(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static inline int clua_make_shield(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_pushcclosure(L, clua_shield, 1);
    return 1;
}

/* ---- Error messages ----------------------------------------------------- */

/* Message handler of every call: any error object becomes a string with a
 * traceback. It may allocate near the cap, hence the slack. */
static inline int clua_traceback(lua_State *L) {
    clua_control *c = clua_control_of(L);
    c->slack = 256 * 1024;
    const char *message = lua_type(L, 1) == LUA_TNUMBER || lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    if (message == NULL) message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, message, 1);
    return 1;
}

/* ---- Bindings ------------------------------------------------------------ */

enum { CLUA_REPLY_OK = 0, CLUA_REPLY_ERROR = 1, CLUA_REPLY_BUDGET = 2 };
enum { CLUA_REPLY_VALUES = 72 };

struct clua_reply {
    int status;           /* CLUA_REPLY_* */
    int level;            /* stack level the error is reported at (1: the caller) */
    int budget;           /* for CLUA_REPLY_BUDGET: which one */
    int push_true;        /* push `true` before the values */
    int push_string;      /* push `message` as a string result (after `true`, before the values) */
    int count;            /* integer results */
    lua_Integer values[CLUA_REPLY_VALUES];
    char message[512];
};

/* The C function behind every Swift binding: upvalue 1 is the index of the
 * binding in clua_control. Raising happens here, in C, after Swift returned. */
static inline int clua_trampoline(lua_State *L) {
    clua_control *c = clua_control_of(L);
    clua_reply reply;
    reply.status = CLUA_REPLY_OK;
    reply.level = 1;
    reply.budget = 0;
    reply.push_true = 0;
    reply.push_string = 0;
    reply.count = 0;
    reply.message[0] = '\0';
    c->bindings[lua_tointeger(L, lua_upvalueindex(1))](L, c->context, &reply);
    if (reply.status == CLUA_REPLY_OK) {
        luaL_checkstack(L, reply.count + 2, "too many results");
        if (reply.push_true) lua_pushboolean(L, 1);
        if (reply.push_string) lua_pushstring(L, reply.message);
        for (int i = 0; i < reply.count && i < CLUA_REPLY_VALUES; i++) lua_pushinteger(L, reply.values[i]);
        return reply.count + reply.push_true + reply.push_string;
    }
    /* Where: the Lua function at `level`; if a tail call replaced it, the
     * position the hook saw last. */
    lua_Debug ar;
    const char *src = NULL;
    int line = 0;
    if (lua_getstack(L, reply.level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        src = ar.short_src;
        line = ar.currentline;
    } else if (c->last_line > 0) {
        src = c->last_src;
        line = c->last_line;
    }
    if (reply.status == CLUA_REPLY_BUDGET) {
        clua_mark(c, reply.budget, src, line);
        lua_sethook(L, clua_budget_hook, LUA_MASKCOUNT, 1);
        strncpy(reply.message, clua_budget_text(c->exhausted), sizeof reply.message - 1);
    }
    reply.message[sizeof reply.message - 1] = '\0';
    if (src) lua_pushfstring(L, "%s:%d: %s", src, line, reply.message);
    else lua_pushstring(L, reply.message);
    return lua_error(L);
}


/* ---- Protected work ----------------------------------------------------- */

enum { CLUA_OP_NIL, CLUA_OP_BOOL, CLUA_OP_INT, CLUA_OP_NUM, CLUA_OP_STR, CLUA_OP_TABLE, CLUA_OP_SET };

/* One step of building values: push a scalar or a table, or set t[k] = v. */
typedef struct {
    int kind;
    int flag;               /* BOOL: the value; TABLE: array size hint */
    lua_Integer integer;    /* INT: the value; TABLE: record size hint; STR: offset in the arena */
    double number;
    const char *bytes;      /* STR: the bytes, or NULL for arena + integer */
    size_t length;
} clua_op;

enum { CLUA_RUN_CALL = 0, CLUA_RUN_PROBE = 1, CLUA_RUN_OPEN = 2 };

/* One Kafka message as process(msg) sees it, pointing into librdkafka's
 * buffers: the per-message path builds `msg` from it in one C loop, with
 * field names as literals (Lua's string cache hits by address). */
typedef struct {
    const char *name;
    const void *value;      /* NULL: a null header value */
    size_t length;
} clua_header;

typedef struct {
    const char *topic;
    lua_Integer partition, offset, timestamp;
    const void *key;        /* NULL: no key */
    size_t key_length;
    const void *payload;
    size_t payload_length;
    const clua_header *headers;
    size_t header_count;
    const char *group, *worker;
    /* Changes (from 1 up) whenever group or worker change: the Lua strings
     * made for them are reused while it stays the same. */
    lua_Integer names_version;
} clua_message;

/* The field names of `msg`, made once per state into a registry table: a
 * C-string field name costs a strcmp in Lua's string cache on every use
 * (luaS_new checks the cached string's text), which showed as 6-9 % of a
 * worker's time in the profile; a Lua string from this table costs an
 * array read. */
enum {
    CLUA_KEY_TOPIC = 1, CLUA_KEY_PARTITION, CLUA_KEY_OFFSET, CLUA_KEY_KEY, CLUA_KEY_PAYLOAD,
    CLUA_KEY_TIMESTAMP, CLUA_KEY_HEADERS, CLUA_KEY_GROUP, CLUA_KEY_WORKER, CLUA_KEY_COUNT = CLUA_KEY_WORKER,
    /* After the names: the cached group and worker values and their version. */
    CLUA_NAMES_VERSION, CLUA_GROUP_VALUE, CLUA_WORKER_VALUE, CLUA_TOPIC_VALUE,
    /* The metatable of process_columns batches (batch.headers read lazily). */
    CLUA_BATCH_META,
    /* Lazy `msg` tables (see clua_push_proxy): field name -> CLUA_KEY_*,
     * the metatable of each position in a call, the table live at each
     * position, and the metatables of sealed tables (with, without a key). */
    CLUA_MSG_FIELDS, CLUA_MSG_METAS, CLUA_MSG_LIVE, CLUA_MSG_SEALED, CLUA_MSG_SEALED_NOKEY,
    CLUA_KEY_SLOTS = CLUA_MSG_SEALED_NOKEY
};
#define CLUA_MESSAGE_KEYS "clua.message_keys"

static inline void clua_make_message_keys(lua_State *L) {
    const char *names[CLUA_KEY_COUNT] = {"topic", "partition", "offset", "key", "payload", "timestamp", "headers", "group", "worker"};
    /* Every slot exists from the start (the array part), so clearing one
     * never allocates. */
    lua_createtable(L, CLUA_KEY_SLOTS, 0);
    for (int i = 0; i < CLUA_KEY_SLOTS; i++) {
        if (i < CLUA_KEY_COUNT) lua_pushstring(L, names[i]); else lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i + 1);
    }
    /* Also under the control block's address: a light-userdata key is read
     * without allocating, so the table is reachable after a failed call
     * (clua_seal_messages) where nothing may raise. */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, clua_control_of(L));
    lua_setfield(L, LUA_REGISTRYINDEX, CLUA_MESSAGE_KEYS);
}

/* Pushes the message keys table (once per call, not per message). */
static inline int clua_push_message_keys(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, clua_control_of(L)) != LUA_TTABLE) {
        lua_pop(L, 1);
        clua_make_message_keys(L);
        lua_rawgetp(L, LUA_REGISTRYINDEX, clua_control_of(L));
    }
    return lua_gettop(L);
}

typedef struct {
    int mode;               /* CLUA_RUN_* */
    const char *function;   /* global to call or probe */
    const clua_op *ops;
    size_t count;
    const char *arena;
    int arguments;          /* values the ops push */
    int results;
    int found;              /* out: the global is a function */
    /* CLUA_RUN_OPEN: the scheduler table */
    const char *worker;
    const char *group;      /* may be NULL */
    /* CLUA_RUN_CALL: when set, the one argument is this message, or with
     * message_list a list of message_count messages (ops unused) */
    const clua_message *message;
    size_t message_count;
    int message_list;
    int message_columns;    /* with message_list: one table of columns instead of a list of tables */
    /* Without message_list: the function is called once per message, in
     * order, each call under its own budget (each_instructions,
     * each_milliseconds), until one fails or `after` says stop
     * (clua_run_each). */
    int message_each;
    long long each_instructions, each_milliseconds;
    /* Called after each call that succeeded, with the message's index and
     * the call's duration; returns nonzero to stop before the next message.
     * It runs inside the Lua call: it must not call Lua, and cannot fail. */
    int (*after)(void *context, size_t index, long long nanoseconds);
    void *after_context;
    size_t done;            /* out (message_each): calls that succeeded */
    long long started_ns;   /* out (message_each): when the last call began (CLOCK_MONOTONIC) */
    /* Writes message `index`'s headers to `out` (at most `capacity` of
     * them) and returns how many it has. Called only while the call runs,
     * the first time the script reads batch.headers or msg.headers (NULL:
     * no message has headers, unless clua_message.headers lists them). Read
     * this way instead of from clua_message.headers: asking librdkafka for a
     * message's headers costs an allocation even when it has none. */
    size_t (*read_headers)(const void *context, size_t index, clua_header *out, size_t capacity);
    const void *headers_context;
} clua_request;

/* ---- Lazy message tables (process, process_batch) -----------------------
 * `msg` is a fresh, empty table per message; its metatable reads a field
 * from the message (librdkafka's buffers) the first time it is read and
 * stores it in the table, so a no-op process() builds one small table and a
 * field is made at most once. Each position in a call's messages has its
 * own metatable (upvalue: the position), made once per state; the table
 * live at each position is kept in CLUA_MSG_LIVE. When its call ends, a
 * table is sealed: its metatable becomes one that reaches no message, so a
 * msg kept past its call keeps the fields read during the call, raises for
 * the others, and can never show another message's fields. */

/* CLUA_KEY_* of field name `index` (a string), or 0. */
static inline int clua_field_id(lua_State *L, int fields, int index) {
    if (lua_type(L, index) != LUA_TSTRING) return 0;
    lua_pushvalue(L, index);
    int id = lua_rawget(L, fields) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    return id;
}

/* Pushes message `i`'s headers as a table (name -> value). */
static inline void clua_push_headers(lua_State *L, const clua_request *r, size_t i) {
    const clua_message *m = &r->message[i];
    const clua_header *list = m->headers;
    size_t count = m->header_count;
    int buffered = 0;
    clua_header small[8];
    if (!list && r->read_headers) {
        count = r->read_headers(r->headers_context, i, small, 8);
        list = small;
        if (count > 8) {
            clua_header *buffer = (clua_header *)lua_newuserdatauv(L, count * sizeof(clua_header), 0);
            buffered = 1;
            count = r->read_headers(r->headers_context, i, buffer, count);
            list = buffer;
        }
    }
    lua_createtable(L, 0, (int)count);
    for (size_t h = 0; list && h < count; h++) {
        /* A null header value is `false`, so it stays distinct from "". */
        if (list[h].value) lua_pushlstring(L, (const char *)list[h].value, list[h].length); else lua_pushboolean(L, 0);
        lua_setfield(L, -2, list[h].name);
    }
    if (buffered) lua_remove(L, -2);
}

/* Pushes field `field` (CLUA_KEY_*) of message `i` of `r`. */
static inline void clua_push_field(lua_State *L, int keys, const clua_request *r, size_t i, int field) {
    const clua_message *m = &r->message[i];
    switch (field) {
    case CLUA_KEY_TOPIC: {
        /* The topic's string is kept while messages come from the same
         * topic (one lease reads one partition): compared by text, not by
         * pointer, since librdkafka may reuse a freed topic's memory. */
        if (!m->topic) { lua_pushnil(L); break; }
        const char *cached = lua_rawgeti(L, keys, CLUA_TOPIC_VALUE) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!cached || strcmp(cached, m->topic) != 0) {
            lua_pop(L, 1);
            lua_pushstring(L, m->topic);
            lua_pushvalue(L, -1);
            lua_rawseti(L, keys, CLUA_TOPIC_VALUE);
        }
        break;
    }
    case CLUA_KEY_PARTITION: lua_pushinteger(L, m->partition); break;
    case CLUA_KEY_OFFSET: lua_pushinteger(L, m->offset); break;
    case CLUA_KEY_KEY:
        if (m->key) lua_pushlstring(L, (const char *)m->key, m->key_length); else lua_pushnil(L);
        break;
    case CLUA_KEY_PAYLOAD:
        lua_pushlstring(L, m->payload ? (const char *)m->payload : "", m->payload ? m->payload_length : 0);
        break;
    case CLUA_KEY_TIMESTAMP: lua_pushinteger(L, m->timestamp); break;
    case CLUA_KEY_HEADERS: clua_push_headers(L, r, i); break;
    case CLUA_KEY_GROUP:
    case CLUA_KEY_WORKER: {
        /* Group and worker names are long and change rarely: their Lua
         * strings are made once per version, not once per message. */
        lua_rawgeti(L, keys, CLUA_NAMES_VERSION);
        int cached = m->names_version > 0 && lua_tointeger(L, -1) == m->names_version;
        lua_pop(L, 1);
        if (!cached) {
            if (m->group) lua_pushstring(L, m->group); else lua_pushnil(L);
            lua_rawseti(L, keys, CLUA_GROUP_VALUE);
            if (m->worker) lua_pushstring(L, m->worker); else lua_pushnil(L);
            lua_rawseti(L, keys, CLUA_WORKER_VALUE);
            lua_pushinteger(L, m->names_version);
            lua_rawseti(L, keys, CLUA_NAMES_VERSION);
        }
        lua_rawgeti(L, keys, field == CLUA_KEY_GROUP ? CLUA_GROUP_VALUE : CLUA_WORKER_VALUE);
        break;
    }
    default: lua_pushnil(L); break;
    }
}

/* The iterator __pairs returns (the base library's `next` may be replaced). */
static inline int clua_msg_next(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

static inline int clua_msg_pairs_of(lua_State *L) {
    lua_pushcfunction(L, clua_msg_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Whether table 1 is the live msg at position `p` of the running call. */
static inline const clua_request *clua_msg_live(lua_State *L, int keys, size_t p) {
    const clua_request *r = (const clua_request *)clua_control_of(L)->msg_request;
    if (!r || p >= r->message_count) return NULL;
    lua_rawgeti(L, keys, CLUA_MSG_LIVE);
    lua_rawgeti(L, -1, (lua_Integer)p + 1);
    int live = lua_rawequal(L, -1, 1);
    lua_pop(L, 2);
    return live ? r : NULL;
}

/* Raised for a field not read while the message could still be read. */
static inline int clua_msg_gone(lua_State *L) {
    return luaL_error(L, "msg.%s was not read during the call that received this msg: a msg kept after its call keeps only the fields read during the call",
                      lua_tostring(L, 2));
}

/* __index of a live msg (upvalues: the keys table, the position). */
static inline int clua_msg_index(lua_State *L) {
    int keys = lua_upvalueindex(1);
    size_t p = (size_t)lua_tointeger(L, lua_upvalueindex(2));
    lua_settop(L, 2);
    lua_rawgeti(L, keys, CLUA_MSG_FIELDS);
    int field = clua_field_id(L, 3, 2);
    if (!field) return 0;
    const clua_request *r = clua_msg_live(L, keys, p);
    if (!r) return clua_msg_gone(L);
    clua_push_field(L, keys, r, p, field);
    if (!lua_isnil(L, -1)) {
        lua_pushvalue(L, 2);
        lua_pushvalue(L, -2);
        lua_rawset(L, 1);
    }
    return 1;
}

/* __pairs of a live msg: reads every field first, so pairs lists them all. */
static inline int clua_msg_pairs(lua_State *L) {
    int keys = lua_upvalueindex(1);
    size_t p = (size_t)lua_tointeger(L, lua_upvalueindex(2));
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const clua_request *r = clua_msg_live(L, keys, p);
    for (int field = 1; r && field <= CLUA_KEY_COUNT; field++) {
        lua_rawgeti(L, keys, field);
        if (lua_rawget(L, 1) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_rawgeti(L, keys, field);
            clua_push_field(L, keys, r, p, field);
            lua_rawset(L, 1);   /* nil (no key): nothing set */
        } else {
            lua_pop(L, 1);
        }
    }
    return clua_msg_pairs_of(L);
}

/* __index of a sealed msg (upvalues: the field names, whether it had no key). */
static inline int clua_sealed_index(lua_State *L) {
    lua_settop(L, 2);
    int field = clua_field_id(L, lua_upvalueindex(1), 2);
    if (!field || (field == CLUA_KEY_KEY && lua_toboolean(L, lua_upvalueindex(2)))) return 0;
    return clua_msg_gone(L);
}

static inline void clua_push_sealed_meta(lua_State *L, int keys, int nokey) {
    lua_createtable(L, 0, 3);
    lua_rawgeti(L, keys, CLUA_MSG_FIELDS);
    lua_pushboolean(L, nokey);
    lua_pushcclosure(L, clua_sealed_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, clua_msg_pairs_of);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "process message");
    lua_setfield(L, -2, "__metatable");
}

/* Makes the lazy msg tables' slots once per state (inside a protected call). */
static inline void clua_make_message_tables(lua_State *L, int keys) {
    if (lua_rawgeti(L, keys, CLUA_MSG_LIVE) == LUA_TTABLE) { lua_pop(L, 1); return; }
    lua_pop(L, 1);
    lua_createtable(L, 0, CLUA_KEY_COUNT);
    for (int field = 1; field <= CLUA_KEY_COUNT; field++) {
        lua_rawgeti(L, keys, field);
        lua_pushinteger(L, field);
        lua_rawset(L, -3);
    }
    lua_rawseti(L, keys, CLUA_MSG_FIELDS);
    lua_newtable(L);
    lua_rawseti(L, keys, CLUA_MSG_METAS);
    clua_push_sealed_meta(L, keys, 0);
    lua_rawseti(L, keys, CLUA_MSG_SEALED);
    clua_push_sealed_meta(L, keys, 1);
    lua_rawseti(L, keys, CLUA_MSG_SEALED_NOKEY);
    lua_newtable(L);  /* last: its presence says the others are there */
    lua_rawseti(L, keys, CLUA_MSG_LIVE);
}

/* Pushes a fresh msg for message `p` of `r` and records it as live. */
static inline void clua_push_proxy(lua_State *L, int keys, size_t p) {
    lua_createtable(L, 0, 0);
    lua_rawgeti(L, keys, CLUA_MSG_METAS);
    if (lua_rawgeti(L, -1, (lua_Integer)p + 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 3);
        lua_pushvalue(L, keys);
        lua_pushinteger(L, (lua_Integer)p);
        lua_pushcclosure(L, clua_msg_index, 2);
        lua_setfield(L, -2, "__index");
        lua_pushvalue(L, keys);
        lua_pushinteger(L, (lua_Integer)p);
        lua_pushcclosure(L, clua_msg_pairs, 2);
        lua_setfield(L, -2, "__pairs");
        lua_pushliteral(L, "process message");
        lua_setfield(L, -2, "__metatable");
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (lua_Integer)p + 1);
    }
    lua_setmetatable(L, -3);
    lua_pop(L, 1);
    lua_rawgeti(L, keys, CLUA_MSG_LIVE);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)p + 1);
    lua_pop(L, 1);
}

/* Seals the msg live at position `p` (if any). Allocates nothing and
 * cannot raise, so it also runs after a failed call; needs 3 free slots. */
static inline void clua_seal_one(lua_State *L, int keys, int live, const clua_request *r, size_t p) {
    if (lua_rawgeti(L, live, (lua_Integer)p + 1) == LUA_TTABLE) {
        lua_rawgeti(L, keys, r->message[p].key ? CLUA_MSG_SEALED : CLUA_MSG_SEALED_NOKEY);
        lua_setmetatable(L, -2);
        lua_pushnil(L);
        lua_rawseti(L, live, (lua_Integer)p + 1);
    }
    lua_pop(L, 1);
}

/* Seals every msg of call `r` still live; after the call, even a failed one. */
static inline void clua_seal_messages(lua_State *L, const clua_request *r) {
    if (!r->message || r->message_columns) return;
    int keys = lua_gettop(L) + 1;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, clua_control_of(L)) == LUA_TTABLE) {
        if (lua_rawgeti(L, keys, CLUA_MSG_LIVE) == LUA_TTABLE) {
            for (size_t p = 0; p < r->message_count; p++) clua_seal_one(L, keys, keys + 1, r, p);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* process(msg) once per message (message_each): see clua_request. Leaves
 * two results: nil, nil when every call succeeded (or `after` stopped the
 * run), else the failed call's results. A call that raised unwinds the
 * whole run; r->done says which message it was. */
static inline int clua_run_each(lua_State *L, clua_request *r) {
    clua_control *c = clua_control_of(L);
    int keys = clua_push_message_keys(L);   /* 2; the function is 1 */
    clua_make_message_tables(L, keys);
    lua_rawgeti(L, keys, CLUA_MSG_LIVE);    /* 3 */
    c->msg_request = r;
    for (size_t i = 0; i < r->message_count; i++) {
        lua_settop(L, 3);
        lua_pushvalue(L, 1);
        clua_push_proxy(L, keys, i);
        clua_begin_call(L, r->each_instructions, r->each_milliseconds);
        r->started_ns = c->checked_ns;
        r->done = i;
        lua_call(L, 1, 2);
        int ok = c->exhausted == CLUA_WITHIN && (lua_isnil(L, -2) || (lua_isboolean(L, -2) && lua_toboolean(L, -2)));
        clua_seal_one(L, keys, 3, r, i);
        if (!ok) return 2;
        r->done = i + 1;
        if (r->after && r->after(r->after_context, i, clua_now_ns() - r->started_ns)) break;
    }
    lua_settop(L, 3);
    lua_pushnil(L);
    lua_pushnil(L);
    return 2;
}

/* __index of a process_columns batch: builds batch.headers on first use
 * (then stored in the batch), only during the call the batch was made for;
 * afterwards the messages it points into are gone, so it raises instead. */
static inline int clua_batch_index(lua_State *L) {
    size_t length = 0;
    if (lua_type(L, 2) != LUA_TSTRING) return 0;
    const char *name = lua_tolstring(L, 2, &length);
    if (length != 7 || memcmp(name, "headers", 7) != 0) return 0;
    clua_control *c = clua_control_of(L);
    const clua_request *r = (const clua_request *)c->batch_request;
    if (!r || c->batch_table != lua_topointer(L, 1))
        return luaL_error(L, "batch.headers can only be read during the process_columns call that received the batch");
    lua_settop(L, 2);
    lua_createtable(L, 0, 0);                                 /* 3: the list */
    lua_pushnil(L);                                           /* 4: header buffer */
    clua_header *buffer = NULL;
    size_t capacity = 0;
    for (size_t i = 0; r->read_headers && i < r->message_count; i++) {
        size_t count = r->read_headers(r->headers_context, i, buffer, capacity);
        if (count == 0) continue;
        if (count > capacity) {
            buffer = (clua_header *)lua_newuserdatauv(L, count * sizeof(clua_header), 0);
            lua_replace(L, 4);
            capacity = count;
            count = r->read_headers(r->headers_context, i, buffer, capacity);
        }
        lua_createtable(L, 0, (int)count);
        for (size_t h = 0; h < count; h++) {
            /* A null header value is `false`, so it stays distinct from "". */
            if (buffer[h].value) lua_pushlstring(L, (const char *)buffer[h].value, buffer[h].length); else lua_pushboolean(L, 0);
            lua_setfield(L, -2, buffer[h].name);
        }
        lua_rawseti(L, 3, (lua_Integer)i + 1);
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, 1);
    lua_pushvalue(L, 3);
    return 1;
}

/* Marks `batch` (at `index`) as the batch of the running call `r`, and
 * gives it the lazy-headers metatable (made once per state, protected so
 * the script cannot swap it). */
static inline void clua_begin_batch(lua_State *L, int index, const clua_request *r) {
    index = lua_absindex(L, index);
    int keys = clua_push_message_keys(L);
    if (lua_rawgeti(L, keys, CLUA_BATCH_META) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 2);
        lua_pushcfunction(L, clua_batch_index);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "process_columns batch");
        lua_setfield(L, -2, "__metatable");
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, CLUA_BATCH_META);
    }
    lua_setmetatable(L, index);
    lua_pop(L, 1);
    clua_control *c = clua_control_of(L);
    c->batch_table = lua_topointer(L, index);
    c->batch_request = r;
}

/* The batch of process_columns(batch): one table of columns instead of a
 * table per message, so a batch costs a few tables plus its strings:
 *   batch.count, batch.topic, batch.partition, batch.group, batch.worker,
 *   batch.offsets[i], batch.keys[i] (false: no key), batch.payloads[i],
 *   batch.timestamps[i], and batch.headers[i] (a table, only for messages
 *   that have headers), built when first read (clua_batch_index). All
 *   messages are of one partition, in order. */
static inline void clua_push_columns(lua_State *L, const clua_request *r) {
    const clua_message *m = r->message;
    size_t count = r->message_count;
    lua_createtable(L, 0, 10);
    lua_pushinteger(L, (lua_Integer)count);
    lua_setfield(L, -2, "count");
    if (count > 0) {
        if (m[0].topic) lua_pushstring(L, m[0].topic); else lua_pushnil(L);
        lua_setfield(L, -2, "topic");
        lua_pushinteger(L, m[0].partition);
        lua_setfield(L, -2, "partition");
        lua_pushstring(L, m[0].group);
        lua_setfield(L, -2, "group");
        lua_pushstring(L, m[0].worker);
        lua_setfield(L, -2, "worker");
    }
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) { lua_pushinteger(L, m[i].offset); lua_rawseti(L, -2, (lua_Integer)i + 1); }
    lua_setfield(L, -2, "offsets");
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        if (m[i].key) lua_pushlstring(L, (const char *)m[i].key, m[i].key_length); else lua_pushboolean(L, 0);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "keys");
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        lua_pushlstring(L, m[i].payload ? (const char *)m[i].payload : "", m[i].payload ? m[i].payload_length : 0);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "payloads");
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) { lua_pushinteger(L, m[i].timestamp); lua_rawseti(L, -2, (lua_Integer)i + 1); }
    lua_setfield(L, -2, "timestamps");
    clua_begin_batch(L, -1, r);
}

static inline void clua_push_ops(lua_State *L, const clua_op *ops, size_t count, const char *arena) {
    for (size_t i = 0; i < count; i++) {
        const clua_op *op = &ops[i];
        luaL_checkstack(L, 3, "building a value");
        switch (op->kind) {
        case CLUA_OP_BOOL: lua_pushboolean(L, op->flag); break;
        case CLUA_OP_INT: lua_pushinteger(L, op->integer); break;
        case CLUA_OP_NUM: lua_pushnumber(L, op->number); break;
        case CLUA_OP_STR: lua_pushlstring(L, op->bytes ? op->bytes : arena + op->integer, op->length); break;
        case CLUA_OP_TABLE: lua_createtable(L, op->flag, (int)op->integer); break;
        case CLUA_OP_SET: lua_rawset(L, -3); break;
        default: lua_pushnil(L); break;
        }
    }
}

static inline void clua_open_sandbox(lua_State *L, clua_request *r) {
    const luaL_Reg libraries[] = {
        {LUA_GNAME, luaopen_base}, {LUA_TABLIBNAME, luaopen_table}, {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_OSLIBNAME, luaopen_os}, {NULL, NULL},
    };
    for (const luaL_Reg *library = libraries; library->func; library++) {
        luaL_requiref(L, library->name, library->func, 1);
        lua_pop(L, 1);
    }
    lua_getglobal(L, LUA_COLIBNAME);
    const char *charged[] = {"create", "wrap"};
    for (int i = 0; i < 2; i++) {
        lua_getfield(L, -1, charged[i]);
        lua_pushcclosure(L, clua_charged_call, 1);
        lua_setfield(L, -2, charged[i]);
    }
    lua_pop(L, 1);
    /* The scheduler table: raw bindings (the core's _emit, _log, _yield,
     * _match, _charge, then the features', e.g. _schedule) that the
     * preludes wrap or hide. */
    const char *const *names = clua_control_of(L)->names;
    lua_createtable(L, 0, 6);
    lua_pushstring(L, r->worker);
    lua_setfield(L, -2, "worker");
    if (r->group) lua_pushstring(L, r->group); else lua_pushnil(L);
    lua_setfield(L, -2, "group");
    for (int i = 0; i < CLUA_BINDINGS; i++) {
        if (!names[i]) continue;
        lua_pushinteger(L, i);
        lua_pushcclosure(L, clua_trampoline, 1);
        lua_setfield(L, -2, names[i]);
    }
    lua_pushcfunction(L, clua_make_shield);
    lua_setfield(L, -2, "_shield");
    lua_setglobal(L, "scheduler");
    clua_make_message_keys(L);
}

static inline int clua_run(lua_State *L) {
    clua_request *r = (clua_request *)lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (r->mode == CLUA_RUN_OPEN) {
        clua_open_sandbox(L, r);
        return 0;
    }
    r->found = lua_getglobal(L, r->function) == LUA_TFUNCTION;
    if (r->mode == CLUA_RUN_PROBE || !r->found) return 0;
    if (r->message && r->message_list && r->message_columns) {
        clua_push_columns(L, r);
    } else if (r->message && r->message_list) {
        int keys = clua_push_message_keys(L);
        clua_make_message_tables(L, keys);
        clua_control_of(L)->msg_request = r;
        lua_createtable(L, (int)r->message_count, 0);
        for (size_t i = 0; i < r->message_count; i++) {
            clua_push_proxy(L, keys, i);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_remove(L, keys);
    } else if (r->message && r->message_each) {
        return clua_run_each(L, r);
    } else if (r->message) {
        int keys = clua_push_message_keys(L);
        clua_make_message_tables(L, keys);
        clua_control_of(L)->msg_request = r;
        clua_push_proxy(L, keys, 0);
        lua_remove(L, keys);
    } else {
        clua_push_ops(L, r->ops, r->count, r->arena);
    }
    lua_call(L, r->arguments, r->results);
    return r->results;
}

/* Runs `r` under lua_pcall with the traceback handler: leaves r->results
 * values (CLUA_RUN_CALL with the function found) or the error object.
 * Returns LUA_ERRMEM without touching the stack if it cannot grow. */
static inline int clua_protected_run(lua_State *L, clua_request *r) {
    /* Room for the results and for clua_seal_messages after them. */
    if (!lua_checkstack(L, 8 + (r->results > 0 ? r->results : 0))) return -1;
    int base = lua_gettop(L) + 1;
    lua_pushcfunction(L, clua_traceback);
    lua_pushcfunction(L, clua_run);
    lua_pushlightuserdata(L, r);
    int status = lua_pcall(L, 1, r->mode == CLUA_RUN_CALL ? LUA_MULTRET : 0, base);
    lua_remove(L, base);
    if (r->mode == CLUA_RUN_CALL) clua_seal_messages(L, r);
    return status;
}

/* Calls the function below `nargs` values with the traceback handler. */
static inline int clua_protected_call(lua_State *L, int nargs, int nresults) {
    if (!lua_checkstack(L, 2)) return -1;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, clua_traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

#endif
