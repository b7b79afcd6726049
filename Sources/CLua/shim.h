// Thin C surface for Lua 5.4. Lua's function-like macros cannot be called from
// Swift, so each one used by the library gets a prefixed static inline shim.
#ifndef TASK_SCHEDULER_CLUA_SHIM_H
#define TASK_SCHEDULER_CLUA_SHIM_H

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

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

#endif
