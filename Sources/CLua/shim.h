// Thin C surface for Lua 5.4. Lua's function-like macros cannot be called from
// Swift, so each one used by the library gets a prefixed static inline shim.
#ifndef TASK_SCHEDULER_CLUA_SHIM_H
#define TASK_SCHEDULER_CLUA_SHIM_H

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include <stdlib.h>

static inline int clua_pcall(lua_State *L, int nargs, int nresults, int msgh) {
    return lua_pcall(L, nargs, nresults, msgh);
}
static inline void clua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline void clua_newtable(lua_State *L) { lua_newtable(L); }
static inline const char *clua_tostring(lua_State *L, int i) { return lua_tostring(L, i); }
static inline lua_Integer clua_tointeger(lua_State *L, int i) { return lua_tointeger(L, i); }
static inline lua_Number clua_tonumber(lua_State *L, int i) { return lua_tonumber(L, i); }
static inline void clua_pushcfunction(lua_State *L, lua_CFunction f) { lua_pushcfunction(L, f); }
static inline int clua_isfunction(lua_State *L, int n) { return lua_isfunction(L, n); }
static inline int clua_istable(lua_State *L, int n) { return lua_istable(L, n); }
static inline int clua_isnil(lua_State *L, int n) { return lua_isnil(L, n); }
static inline int clua_isnoneornil(lua_State *L, int n) { return lua_isnoneornil(L, n); }
static inline void clua_remove(lua_State *L, int idx) { lua_remove(L, idx); }
static inline void clua_insert(lua_State *L, int idx) { lua_insert(L, idx); }
static inline void clua_pushglobaltable(lua_State *L) { lua_pushglobaltable(L); }
static inline int clua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline void *clua_newuserdata(lua_State *L, size_t size) { return lua_newuserdata(L, size); }
static inline int clua_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline int clua_multret(void) { return LUA_MULTRET; }
static inline void clua_gc_collect(lua_State *L) { lua_gc(L, LUA_GCCOLLECT); }
/* Generational mode: process() makes a few short-lived tables per message,
 * which a young collection frees cheaply. */
static inline void clua_gc_generational(lua_State *L) { lua_gc(L, LUA_GCGEN, 0, 0); }

/* Limits (issue: scripts you can trust). Both stay in C so that Lua's error
 * longjmp never crosses a Swift frame. */

/* Memory accounting for one lua_State: lua_newstate's allocator with a cap.
 * Returning NULL makes Lua raise "not enough memory" in the running call. */
typedef struct {
    size_t used;
    size_t limit;
} clua_memory;

static inline void *clua_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    clua_memory *memory = (clua_memory *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        memory->used -= old;
        return NULL;
    }
    if (nsize > old && memory->used - old + nsize > memory->limit) return NULL;
    void *block = realloc(ptr, nsize);
    if (block) memory->used = memory->used - old + nsize;
    return block;
}

static inline lua_State *clua_newstate_limited(clua_memory *memory) {
    return lua_newstate(clua_limited_alloc, memory);
}

/* Instruction budget for one call: a count hook that fires once the budget
 * is spent and raises an error inside the running function. */
static inline void clua_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    /* From now on every instruction fails, so a script that catches the
     * error with pcall cannot go on looping. */
    lua_sethook(L, clua_budget_hook, LUA_MASKCOUNT, 1);
    /* Name the line that was running (luaL_error's own position would be
     * the caller's). */
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        luaL_error(L, "%s:%d: instruction limit exceeded", ar->short_src, ar->currentline);
    luaL_error(L, "instruction limit exceeded");
}

static inline void clua_set_budget(lua_State *L, int instructions) {
    if (instructions > 0) lua_sethook(L, clua_budget_hook, LUA_MASKCOUNT, instructions);
}

static inline void clua_clear_budget(lua_State *L) {
    lua_sethook(L, NULL, 0, 0);
}

#endif
