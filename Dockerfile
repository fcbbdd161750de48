# syntax=docker/dockerfile:1
# Vigil's images. The default target (runtime) holds the services; commands:
#   node node_modules/@vigil/server/dist/main.js   flag server (VIGIL_STORE=redis for replicas)
#   node dist/main.js                              guardian (Redis only)
#   node dist/all-in-one.js                        flag server + guardian in one process (default;
#                                                  the only way to run the guardian on the embedded store)
# Every flag server serves the ops console at / from /app/console (VIGIL_CONSOLE_DIR).
# The `demo` target holds `pnpm demo` (a checkout app on the Node SDK under traffic, driving a running Vigil).

# Node 22 LTS, the documented runtime, in every stage: a native addon (better-sqlite3, the embedded
# store) built in the build stage must load on the same Node ABI and glibc at run time.
FROM node:22-bookworm-slim AS build
WORKDIR /src
# node-gyp's toolchain, for native addons that have no prebuilt binary for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g pnpm@10 --no-fund --no-audit
COPY . .
RUN pnpm install --frozen-lockfile \
 && pnpm build \
 && pnpm --filter=@vigil/guardian deploy --prod --legacy /out \
 && test -f console/dist/index.html && cp -R console/dist /out/console \
 && pnpm --filter=@vigil/demo deploy --prod --legacy /out-demo

FROM node:22-bookworm-slim AS demo
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /out-demo /app
USER node
EXPOSE 4300
ENTRYPOINT ["node", "dist/main.js"]

FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    VIGIL_HOST=0.0.0.0 \
    VIGIL_PORT=4242 \
    VIGIL_DATA_DIR=/data \
    VIGIL_CONSOLE_DIR=/app/console
WORKDIR /app
COPY --from=build --chown=node:node /out /app
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 4242 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.VIGIL_PORT||4242)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/all-in-one.js"]
