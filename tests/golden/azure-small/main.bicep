// Azure Container Apps deployment of the amplihack-hive hive 'demo':
// 3 agents in 2 container apps of at most 2 agents (one agent process per app).
//
// Rendered by `amplihack-hive render demo` from the hive's config.yaml: edit the config
// and render again rather than editing this file. Deploy with
//   amplihack-hive up demo --target azure --resource-group RG --image REF
// (or `start ... --target azure`), which runs `az deployment group create` with
// main.parameters.json and passes the hive token as a secure parameter, from a private
// temporary parameters file deleted after the run (never in main.parameters.json).
// The apps are deployed one at a time (@batchSize(1)), each once the one before is ready
// (its agents rebuilt from their replicas): a new revision never restarts the whole hive.
targetScope = 'resourceGroup'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Agent image, e.g. myregistry.azurecr.io/amplihack-hive:0.1.0 (built from the project\'s Dockerfile).')
param image string

@description('Grant the pull identity AcrPull on the image\'s Azure Container Registry (the deployer needs Owner or User Access Administrator there). Set false when the identity already has it.')
param grantAcrPull bool = true

@description('Resource group of that Azure Container Registry.')
param registryResourceGroup string = resourceGroup().name

@description('Days Log Analytics keeps the agents\' logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('The hive token every request between agents carries (from <hive>/token or $AMPLIHACK_HIVE_TOKEN).')
@secure()
param hiveToken string

@description('Optional API key for the agents\' language model ($AMPLIHACK_HIVE_API_KEY); empty for none.')
@secure()
param apiKey string = ''

@description('Key of the embeddings endpoint of semantic recall ($AMPLIHACK_HIVE_EMBED_KEY); empty for none.')
@secure()
param embedKey string = ''

@description('The embeddings endpoint of an openai:MODEL embedder ($AMPLIHACK_HIVE_EMBED_URL); empty for none.')
param embedUrl string = ''

@description('Client address ranges (CIDR) let into the hive\'s entry app; empty for any (every request still needs the hive token).')
param allowedIps array = []

var hiveName = 'demo'
var tags = {
  'amplihack-hive': hiveName
}

// One entry per container app: its name, the agents its process hosts, and its size
// (memory = 0.5 GiB + (buffer pool + 0.25 GiB) per agent, rounded up to 0.5 GiB; vCPU = memory / 2).
var apps = [
  {
    name: 'demo-agent-0'
    agents: 'agent-0,agent-1'
    cpu: '0.75'
    memory: '1.5Gi'
    entry: true
  }
  {
    name: 'demo-agent-2'
    agents: 'agent-2'
    cpu: '0.5'
    memory: '1Gi'
    entry: false
  }
]

// The hash ring: every agent, in config order.
var allAgents = 'agent-0,agent-1,agent-2'

// The image's registry host (the first path segment when it names a host), and the Azure
// Container Registry name when it is one.
var imageHost = first(split(image, '/'))
var registryServer = contains(image, '/') && (contains(imageHost, '.') || contains(imageHost, ':')) ? imageHost : ''
var acrName = endsWith(registryServer, '.azurecr.io') ? first(split(registryServer, '.')) : ''

module environment 'modules/environment.bicep' = {
  name: '${hiveName}-environment'
  params: {
    hiveName: hiveName
    location: location
    tags: tags
    logRetentionDays: logRetentionDays
  }
}

module identity 'modules/identity.bicep' = {
  name: '${hiveName}-identity'
  params: {
    hiveName: hiveName
    location: location
    tags: tags
  }
}

module acrPull 'modules/acr-pull.bicep' = if (grantAcrPull && !empty(acrName)) {
  name: '${hiveName}-acr-pull'
  scope: resourceGroup(registryResourceGroup)
  params: {
    registryName: acrName
    principalId: identity.outputs.principalId
  }
}

// Where each agent is reached: agent=https://<its app>.internal.<environment domain>
// (the entry app, demo-agent-0, has external ingress: https://<app>.<domain>),
// comma-separated. One plain literal and one replace(): quick to parse, any Bicep version.
var domain = environment.outputs.defaultDomain
var peers = replace('agent-0=https://demo-agent-0.{domain},agent-1=https://demo-agent-0.{domain},agent-2=https://demo-agent-2.internal.{domain}', '{domain}', domain)

// One app at a time: each waits until the one before is ready (its readiness probe passes
// once its agents are in step with their replicas), so a new revision rolls through the
// hive and every record keeps live replicas all along (Cassandra's rolling restart).
@batchSize(1)
module agentApps 'modules/agent-app.bicep' = [for app in apps: {
  name: 'app-${app.name}'
  params: {
    name: app.name
    location: location
    tags: tags
    environmentId: environment.outputs.environmentId
    environmentDomain: domain
    pullIdentityId: identity.outputs.id
    image: image
    registryServer: registryServer
    agents: app.agents
    allAgents: allAgents
    peers: peers
    replication: 3
    backend: 'kuzu'
    bufferPoolMb: 256
    tokenizer: 2
    groups: ''
    embedder: ''
    nprobe: 8
    embedKey: embedKey
    embedUrl: embedUrl
    cpu: app.cpu
    memory: app.memory
    hiveToken: hiveToken
    apiKey: apiKey
    external: app.entry
    allowedIps: app.entry ? allowedIps : []
  }
  dependsOn: [
    acrPull
  ]
}]

@description('Names of the hive\'s container apps.')
output appNames array = [for app in apps: app.name]

@description('DNS suffix of the hive\'s Container Apps environment.')
output environmentDomain string = domain

@description('The hive\'s entry point for clients (learn, recall, ask, status --target azure).')
output entryUrl string = 'https://demo-agent-0.${domain}'
