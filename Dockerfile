# One image for the agent, the coordinator and the CLI.
#   docker build -t noma:dev .
#   agent:       node dist/agent/main.js        (DaemonSet; privileges come from its securityContext)
#   coordinator: node dist/coordinator/main.js  (Deployment)
#   CLI:         node dist/cli/main.js
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY shared ./shared
COPY agent ./agent
COPY coordinator ./coordinator
COPY cli ./cli
RUN npm run build

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /src/dist ./dist
USER node
ENTRYPOINT ["node"]
CMD ["dist/coordinator/main.js"]
