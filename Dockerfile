# One image for the agent, the coordinator and the CLI.
#   docker build -t noma:0.1.0 .
#   agent:       node dist/agent/main.js        (DaemonSet; runs as root: privileges come from
#                                                its securityContext in deploy/)
#   coordinator: node dist/coordinator/main.js  (Deployment; the default command, as user node)
#   CLI:         docker run --rm noma:0.1.0 dist/cli/main.js --help
# Health: the agent serves /healthz and /readyz on 9402, the coordinator on 8080; deploy/ probes
# them. A test (test/unit/dockerfile.test.ts) checks that every path copied here exists and that
# the entry points are built by tsconfig.build.json.

# Node 24 is the active LTS line.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY shared ./shared
COPY agent ./agent
COPY coordinator ./coordinator
COPY cli ./cli
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
# Unprivileged by default (the coordinator, the CLI); the agent's pod sets runAsUser: 0.
USER node
EXPOSE 8080 8443 9402
ENTRYPOINT ["node"]
CMD ["dist/coordinator/main.js"]
